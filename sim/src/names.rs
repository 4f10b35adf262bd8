//! Name pools for generated elections: places, people, ethnicities and parties as they
//! appear in Beichen District's own documents. Only the generator uses them.

/// Beichen District's towns (镇): (id, name).
pub const BEICHEN_TOWNS: [(&str, &str); 9] = [
    ("xiditou", "西堤头镇"),
    ("yixingbu", "宜兴埠镇"),
    ("tianmu", "天穆镇"),
    ("beicang", "北仓镇"),
    ("shuangjie", "双街镇"),
    ("shuangkou", "双口镇"),
    ("qingguang", "青光镇"),
    ("dazhangzhuang", "大张庄镇"),
    ("xiaodian", "小淀镇"),
];

/// Beichen District's streets (街道): (id, name).
pub const BEICHEN_STREETS: [(&str, &str); 6] = [
    ("guoyuanxincun", "果园新村街"),
    ("jixianli", "集贤里街"),
    ("pudong", "普东街"),
    ("jiarongli", "佳荣里街"),
    ("qingyuan", "青源街"),
    ("guangyuan", "广源街"),
];

pub const SURNAMES: [&str; 40] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
    "何", "郭", "马", "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "萧", "程", "曹",
    "袁", "邓", "许", "傅", "沈", "曾", "彭", "吕",
];

pub const GIVEN_NAME_CHARS: [&str; 48] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "英", "华", "建", "国", "志", "红", "玉", "兰", "海", "文",
    "斌", "燕", "鹏", "辉", "宁", "波", "春", "晓", "琳", "凤", "立", "新", "德", "成", "荣", "冬",
];

/// Ethnic minorities present in Tianjin, by rough frequency.
pub const MINORITY_ETHNICITIES: [&str; 4] = ["回族", "满族", "蒙古族", "朝鲜族"];

/// Non-CPC affiliations (党外): the mass of non-members first, then the democratic parties.
pub const NON_CPC_PARTIES: [&str; 9] = [
    "群众",
    "群众",
    "群众",
    "民革",
    "民盟",
    "民建",
    "民进",
    "九三学社",
    "无党派",
];

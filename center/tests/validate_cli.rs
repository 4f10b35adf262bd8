//! `center validate` as an official runs it: the real binary on real files.

use std::path::Path;
use std::process::{Command, Output};

const GOOD: &str = r#"
[election]
id = "test-2021"
name = "测试选举"
date = "2021-11-01"
rules = "prc-direct"

[[unit]]
id = "xiditou"
name = "西堤头镇"
kind = "town"

[[unit]]
id = "jixianli"
name = "集贤里街"
kind = "street"

[[contest]]
id = "D-001"
level = "district"
unit = "xiditou"
name = "区级第1选区"
seats = 1
registered = 2000
candidates = [
  { id = "D-001-1", name = "张伟", gender = "F", ethnicity = "汉族", party = "中共", incumbent = true },
  { id = "D-001-2", name = "李强", gender = "M", ethnicity = "回族", party = "群众" },
]

[[contest]]
id = "T-001"
level = "town"
unit = "xiditou"
name = "西堤头镇镇级第1选区"
seats = 2
registered = 2000
candidates = [
  { id = "T-001-1", name = "王芳", gender = "F", ethnicity = "汉族", party = "中共" },
  { id = "T-001-2", name = "赵明", gender = "M", ethnicity = "汉族", party = "民盟" },
  { id = "T-001-3", name = "刘洋", gender = "M", ethnicity = "汉族", party = "中共" },
]

[[station]]
id = "S-0001"
name = "西堤头镇第1投票站"
kind = "fixed"
contests = ["D-001", "T-001"]

[[station]]
id = "S-0002"
name = "西堤头镇第1流动票箱"
kind = "mobile"
contests = ["D-001", "T-001"]
"#;

fn center(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_center"))
        .args(args)
        .output()
        .expect("center runs")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write fixture");
    path.display().to_string()
}

#[test]
fn a_good_definition_prints_its_summary_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "good.toml", GOOD);
    let out = center(&["validate", "--election", &file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("district level: 1 contests, 1 seats, 2 candidates, 2000 voters"),
        "{stdout}"
    );
    assert!(
        stdout.contains("town level: 1 contests, 2 seats, 3 candidates, 2000 voters"),
        "{stdout}"
    );
    assert!(stdout.contains("stations: 1 fixed, 1 mobile"), "{stdout}");

    let out = center(&["validate", "--election", &file, "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["valid"], true);
    assert_eq!(v["summary"]["town"]["seats"], 2);
    assert_eq!(v["summary"]["streets"], 1);
}

#[test]
fn every_mistake_is_reported_with_its_path_and_the_exit_is_non_zero() {
    let bad = GOOD
        .replace(r#"id = "test-2021""#, r#"id = "Test 2021""#) // election.id: bad characters
        .replace(
            r#"unit = "xiditou"
name = "西堤头镇镇级第1选区""#,
            r#"unit = "jixianli"
name = "西堤头镇镇级第1选区""#,
        ) // contest[1]: a town-level contest in a street
        .replace("seats = 1\nregistered = 2000", "seats = 4\nregistered = 0") // contest[0]: seats and registered
        .replace(r#"id = "S-0002""#, r#"id = "S-0001""#) // station[1].id: duplicate
        .replace(
            r#"contests = ["D-001", "T-001"]
"#,
            r#"contests = ["D-001", "X-404"]
"#,
        ); // station[*].contests: unknown contest
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "bad.toml", &bad);

    let out = center(&["validate", "--election", &file]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for path in [
        "election.id",
        "contest[0].seats",
        "contest[0].registered",
        "contest[1]",
        "station[1].id",
        "station[0].contests",
    ] {
        assert!(
            stderr.contains(&format!("{file}: {path}")),
            "no error at {path} in:\n{stderr}"
        );
    }

    let out = center(&["validate", "--election", &file, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["valid"], false);
    let errors = v["errors"].as_array().expect("errors array");
    assert!(errors.len() >= 6, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| e["file"] == file.as_str() && !e["reason"].as_str().unwrap_or("").is_empty())
    );
}

#[test]
fn a_missing_or_unreadable_file_is_a_clear_error() {
    let out = center(&["validate", "--election", "/nonexistent/election.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/election.toml: cannot read"),
        "a whole-file mistake names the file, with no empty path after it: {stderr}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("latin1.toml");
    std::fs::write(&file, b"[election]\nname = \"\xe9\"\n").expect("write");
    let out = center(&["validate", "--election", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not UTF-8"));
}

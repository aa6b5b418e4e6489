//! Export: JSONL in the audit schema, CSV with its escaping.

use super::*;

#[test]
fn exports_jsonl_in_the_audit_schema_and_csv_with_escaping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let s = store(&path);
    let mut tricky = decision(0, 1000);
    tricky.path = "/a/proj/has,comma \"quote\"\nnewline".into();
    s.record_decision(tricky.clone());
    s.record_override(OverrideEvent {
        time_ms: 1500,
        kind: OverrideEventKind::Approve,
        override_id: "o-7".into(),
        path: "/a/proj".into(),
        ops: "unlink,rename".parse().unwrap(),
        who: "=HYPERLINK(\"http://evil\")".into(),
        ttl_secs: Some(600),
    });
    s.record_decision(decision(1, 2000));
    s.flush().unwrap();
    let reader = AuditReader::open(&path).unwrap();

    let mut out = Vec::new();
    let n = reader
        .export(&AuditQuery::default(), ExportFormat::Jsonl, &mut out)
        .unwrap();
    assert_eq!(n, 3);
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        for key in [
            "timestamp",
            "event_id",
            "actor",
            "action",
            "decision",
            "policy_id",
            "context",
        ] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }
    assert_eq!(lines[0]["timestamp"], "1970-01-01T00:00:01.000Z");
    assert_eq!(lines[0]["action"]["path"], tricky.path.as_str());
    assert_eq!(lines[0]["decision"], "DENY");
    assert_eq!(lines[0]["actor"]["id"], "claude");
    assert_eq!(lines[0]["policy_id"], "sha256:abc");
    assert_eq!(lines[1]["action"]["type"], "override_approve");
    assert_eq!(lines[2]["decision"], "AUDIT");

    // A decision-only filter leaves override events out.
    let mut out = Vec::new();
    let n = reader
        .export(
            &AuditQuery {
                agent: Some("claude".into()),
                ..Default::default()
            },
            ExportFormat::Jsonl,
            &mut out,
        )
        .unwrap();
    assert_eq!(n, 1);

    let mut out = Vec::new();
    reader
        .export(&AuditQuery::default(), ExportFormat::Csv, &mut out)
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with(CSV_HEADER), "{text}");
    assert!(
        text.contains("\"/a/proj/has,comma \"\"quote\"\"\nnewline\""),
        "{text}"
    );
    // The formula an agent-controlled field could carry is neutralized.
    assert!(
        text.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""),
        "{text}"
    );
    assert!(!text.contains(",=HYPERLINK"), "{text}");
}

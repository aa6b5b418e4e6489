//! Queries: every filter against an in-memory oracle, the plans SQLite picks, paths as data.

use super::*;

/// Every filter, alone and combined, against the same filter computed in Rust.
#[test]
fn queries_match_an_in_memory_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let s = store(&path);
    let base = 1_700_000_000_000i64;
    // Ten minutes apart: about two weeks, so that path queries cross day buckets.
    const STEP: i64 = 600_000;
    let all: Vec<DecisionRecord> = (0..2000)
        .map(|i| decision(i, base + i as i64 * STEP))
        .collect();
    for d in &all {
        s.record_decision(d.clone());
    }
    s.flush().unwrap();
    assert_eq!(s.stats().decisions_written, 2000);
    let reader = AuditReader::open(&path).unwrap();

    let queries = vec![
        AuditQuery::default(),
        AuditQuery {
            agent: Some("codex".into()),
            ..Default::default()
        },
        AuditQuery {
            op: Some(OpKind::Rename),
            ..Default::default()
        },
        AuditQuery {
            verdict: Some(Decision::Deny),
            limit: Some(1000),
            ..Default::default()
        },
        AuditQuery {
            path_prefix: Some("/a/proj/".into()),
            limit: Some(5000),
            ..Default::default()
        },
        AuditQuery {
            since_ms: Some(base + 1000 * STEP),
            until_ms: Some(base + 1100 * STEP),
            ..Default::default()
        },
        AuditQuery {
            path_prefix: Some("/a/proj".into()),
            since_ms: Some(base + 300 * STEP + 1),
            until_ms: Some(base + 1700 * STEP),
            limit: Some(150),
            ..Default::default()
        },
        AuditQuery {
            path_prefix: Some("/a/project2/f21".into()),
            ..Default::default()
        },
        AuditQuery {
            path_prefix: Some("/a/proj".into()),
            limit: Some(0),
            ..Default::default()
        },
        AuditQuery {
            agent: Some("claude".into()),
            verdict: Some(Decision::Audit),
            path_prefix: Some("/b".into()),
            since_ms: Some(base + 100 * STEP),
            limit: Some(7),
            ..Default::default()
        },
        AuditQuery {
            agent: Some("nobody".into()),
            ..Default::default()
        },
    ];
    for q in queries {
        let got: Vec<DecisionRecord> = reader
            .query(&q)
            .unwrap()
            .into_iter()
            .map(|r| r.record)
            .collect();
        let prefix = q.path_prefix.as_deref().map(|p| p.trim_end_matches('/'));
        let mut expected: Vec<DecisionRecord> = all
            .iter()
            .filter(|d| q.agent.as_deref().is_none_or(|a| d.agent == a))
            .filter(|d| q.op.is_none_or(|o| d.op == o))
            .filter(|d| q.verdict.is_none_or(|v| d.verdict == v))
            .filter(|d| prefix.is_none_or(|p| d.path == p || d.path.starts_with(&format!("{p}/"))))
            .filter(|d| q.since_ms.is_none_or(|t| d.time_ms >= t))
            .filter(|d| q.until_ms.is_none_or(|t| d.time_ms < t))
            .cloned()
            .collect();
        expected.reverse();
        expected.truncate(q.limit.unwrap_or(100));
        assert_eq!(got, expected, "query {q:?}");
    }
    // The component boundary: /a/proj does not cover /a/project2 or /a/proj.bak.
    let under_proj = reader
        .query(&AuditQuery {
            path_prefix: Some("/a/proj".into()),
            limit: Some(5000),
            ..Default::default()
        })
        .unwrap();
    assert!(!under_proj.is_empty());
    assert!(under_proj
        .iter()
        .all(|r| r.record.path.starts_with("/a/proj/")));
}

/// The query plans use an index for each filter, and exports never sort (constant memory).
#[test]
fn query_plans_use_indexes_and_exports_do_not_sort() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    drop(store(&path));
    let conn = Connection::open(&path).unwrap();
    let plan = |sql: &str, filters: &Filters| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(filters.param_refs().as_slice(), |r| r.get::<_, String>(3))
            .unwrap();
        rows.collect::<Result<Vec<_>, _>>().unwrap().join("\n")
    };
    let filters = [
        (
            "agent",
            AuditQuery {
                agent: Some("claude".into()),
                ..Default::default()
            },
        ),
        (
            "op",
            AuditQuery {
                op: Some(OpKind::Unlink),
                ..Default::default()
            },
        ),
        (
            "verdict",
            AuditQuery {
                verdict: Some(Decision::Deny),
                ..Default::default()
            },
        ),
        (
            "verdict allow",
            AuditQuery {
                verdict: Some(Decision::Allow),
                ..Default::default()
            },
        ),
        (
            "path",
            AuditQuery {
                path_prefix: Some("/a/proj".into()),
                ..Default::default()
            },
        ),
        (
            "since",
            AuditQuery {
                since_ms: Some(5),
                ..Default::default()
            },
        ),
        ("none", AuditQuery::default()),
    ];
    for (name, q) in &filters {
        let (sql, f) = if q.path_prefix.is_some() {
            let (sql, mut f, _) = path_day_sql(q);
            f.params.push(Box::new(20_000i64));
            f.params.push(Box::new(100i64));
            (sql, f)
        } else {
            query_sql(q)
        };
        let p = plan(&sql, &f);
        if q.path_prefix.is_some() {
            assert!(p.contains("decisions_day_path"), "{name}: {p}");
        }
        if q.verdict == Some(Decision::Deny) {
            assert!(p.contains("decisions_deny_time"), "{name}: {p}");
        }
        // The inner selection must search an index, never scan the table.
        assert!(p.contains("INDEX"), "{name}: {p}");
        assert!(
            !p.contains("SCAN decisions\n") && !p.ends_with("SCAN decisions"),
            "{name}: {p}"
        );
        let ((d_sql, d_f), (o_sql, o_f)) = export_sql(q);
        for p in [plan(&d_sql, &d_f), plan(&o_sql, &o_f)] {
            assert!(!p.contains("TEMP B-TREE"), "export {name} sorts: {p}");
        }
    }
}

/// Characters that mean something to SQL or to LIKE patterns are plain data in a path filter.
#[test]
fn path_filter_treats_sql_and_pattern_characters_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let s = store(&path);
    let paths = [
        "/a/100%/x",
        "/a/100x/y",
        "/a/b_c/x",
        "/a/bxc/y",
        "/a/it's/x",
        "/a/it's'); DROP TABLE decisions;--/x",
    ];
    for (i, p) in paths.iter().enumerate() {
        let mut d = decision(i, 1000 + i as i64);
        d.path = p.to_string();
        s.record_decision(d);
    }
    s.flush().unwrap();
    let reader = AuditReader::open(&path).unwrap();
    let under = |prefix: &str| -> Vec<String> {
        let mut found: Vec<String> = reader
            .query(&AuditQuery {
                path_prefix: Some(prefix.into()),
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .map(|r| r.record.path)
            .collect();
        found.sort();
        found
    };
    assert_eq!(under("/a/100%"), ["/a/100%/x"]);
    assert_eq!(under("/a/b_c"), ["/a/b_c/x"]);
    assert_eq!(under("/a/it's"), ["/a/it's/x"]);
    assert_eq!(
        under("/a/it's'); DROP TABLE decisions;--"),
        ["/a/it's'); DROP TABLE decisions;--/x"]
    );
    assert_eq!(count(&path, "decisions"), 6);
}

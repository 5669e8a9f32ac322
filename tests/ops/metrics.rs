//! `/metrics` in the Prometheus text format.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{Server, TestDatabase};

/// One sample of the exposition: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses `name{a="x",b="y"} 1.5` lines; comments and blank lines skipped.
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad metrics line: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (
                name,
                parse_labels(rest.strip_suffix('}').expect("closing brace")),
            ),
            None => (series, BTreeMap::new()),
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("unterminated label value") {
                (_, '\\') => {
                    let (_, c) = chars.next().expect("escape");
                    value.push(if c == 'n' { '\n' } else { c });
                }
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim_start_matches(',').to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

async fn scrape(server: &Server) -> Vec<Sample> {
    let reply = server.get("/metrics", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        reply.header("content-type")
    );
    parse(&reply.text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_request_just_made_under_its_route_with_latency_and_pool_gauges() {
    let db = TestDatabase::new();
    let mut server = Server::start(&db.url, &[("DB_MAX_CONNECTIONS", "3")]).await;
    let user = server.user().await;
    let list = [
        ("route", "/api/patients"),
        ("method", "GET"),
        ("status", "200"),
    ];

    // This process has not listed patients yet.
    let before = scrape(&server).await;
    assert!(
        find(&before, "http_requests_total", &list).is_none(),
        "counted before the request was made"
    );

    let reply = server.get("/api/patients/", Some(&user.access)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let after = scrape(&server).await;
    let count = find(&after, "http_requests_total", &list)
        .unwrap_or_else(|| panic!("GET /api/patients not counted: {after:#?}"));
    assert_eq!(count.value, 1.0, "{count:?}");

    // Its latency histogram: one observation, in the +Inf bucket and in
    // every bucket above it, with a positive sum.
    let hist_count = find(&after, "http_request_duration_seconds_count", &list)
        .unwrap_or_else(|| panic!("no latency histogram for the route: {after:#?}"));
    assert_eq!(hist_count.value, 1.0);
    let sum = find(&after, "http_request_duration_seconds_sum", &list).expect("histogram sum");
    assert!(sum.value > 0.0 && sum.value < 30.0, "{sum:?}");
    let buckets: Vec<&Sample> = after
        .iter()
        .filter(|s| {
            s.name == "http_request_duration_seconds_bucket"
                && list
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(buckets.len() > 2, "too few buckets: {buckets:#?}");
    let inf = buckets
        .iter()
        .find(|b| b.labels.get("le").map(String::as_str) == Some("+Inf"))
        .expect("+Inf bucket");
    assert_eq!(inf.value, 1.0);
    let mut by_bound: Vec<(f64, f64)> = buckets
        .iter()
        .map(|b| {
            let le = b.labels["le"].as_str();
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("bucket bound")
            };
            (bound, b.value)
        })
        .collect();
    by_bound.sort_by(|x, y| x.0.total_cmp(&y.0));
    assert!(
        by_bound.windows(2).all(|w| w[0].1 <= w[1].1),
        "buckets are not cumulative: {by_bound:?}"
    );

    // One series per route template, not per id.
    let created = server.create_patient(&user.access, "Metric Mia").await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_i64().expect("id");
    let read = server
        .get(&format!("/api/patients/{id}/"), Some(&user.access))
        .await;
    assert_eq!(read.status, 200, "{}", read.text);
    let missing = server
        .get("/api/patients/999999999/", Some(&user.access))
        .await;
    assert_eq!(missing.status, 404);
    let after = scrape(&server).await;
    let by_status = |status: &str| {
        after
            .iter()
            .find(|s| {
                s.name == "http_requests_total"
                    && s.labels.get("method").map(String::as_str) == Some("GET")
                    && s.labels.get("route").map(String::as_str) == Some("/api/patients/{id}")
                    && s.labels.get("status").map(String::as_str) == Some(status)
            })
            .map(|s| s.value)
    };
    assert_eq!(by_status("200"), Some(1.0));
    assert_eq!(by_status("404"), Some(1.0));
    assert!(
        !after.iter().any(|s| s
            .labels
            .get("route")
            .is_some_and(|r| r.contains(&id.to_string()))),
        "a route label holds an id"
    );
    let created = find(
        &after,
        "http_requests_total",
        &[
            ("route", "/api/patients"),
            ("method", "POST"),
            ("status", "201"),
        ],
    )
    .expect("POST counted");
    assert_eq!(created.value, 1.0);

    // Database pool gauges.
    let idle = find(&after, "db_pool_connections", &[("state", "idle")])
        .unwrap_or_else(|| panic!("no idle pool gauge: {after:#?}"));
    let in_use = find(&after, "db_pool_connections", &[("state", "in_use")])
        .unwrap_or_else(|| panic!("no in-use pool gauge: {after:#?}"));
    let max = find(&after, "db_pool_max_connections", &[]).expect("max pool gauge");
    assert_eq!(max.value, 3.0);
    assert!(idle.value >= 0.0 && in_use.value >= 0.0);
    assert!(
        idle.value + in_use.value <= max.value,
        "{idle:?} {in_use:?}"
    );
    assert!(
        idle.value + in_use.value >= 1.0,
        "an open pool with no connections"
    );

    server.stop(Duration::from_secs(20)).await;
}

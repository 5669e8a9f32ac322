//! Lists (API.md §7): every list endpoint answers a plain JSON array, takes
//! `limit` (default 100, 1 to 1000) and `offset`, and answers
//! `X-Total-Count` and an RFC 8288 `Link` header; filters and allow-listed
//! `ordering` (`id` breaking ties).
//!
//! The PostgreSQL database is shared between tests, so every assertion is
//! scoped to this test's own users (patients, mappings) or to doctors with
//! names or specializations no other test uses.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, id_of, spawn_app, unique};

const GENDERS: [&str; 4] = ["Male", "Female", "Other", "Unknown"];

fn ids(body: &Value) -> Vec<i64> {
    body.as_array()
        .unwrap_or_else(|| panic!("not a JSON array: {body}"))
        .iter()
        .map(id_of)
        .collect()
}

fn encode(pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    query.finish()
}

/// `path?filters&extra`, form-urlencoded.
fn url(path: &str, filters: &[(&str, &str)], extra: &[(&str, &str)]) -> String {
    let all: Vec<(&str, &str)> = filters.iter().chain(extra).copied().collect();
    if all.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", encode(&all))
    }
}

/// The `Link` header of the page at `offset`: `next` when rows follow,
/// `prev` when rows precede, each keeping the filters, `limit` and `offset`.
fn expected_link(
    path: &str,
    filters: &[(&str, &str)],
    limit: usize,
    offset: usize,
    total: usize,
) -> Option<String> {
    let target = |o: usize| {
        let limit = limit.to_string();
        let o = o.to_string();
        format!(
            "<{}>",
            url(path, filters, &[("limit", &limit), ("offset", &o)])
        )
    };
    let mut links = Vec::new();
    if offset + limit < total {
        links.push(format!("{}; rel=\"next\"", target(offset + limit)));
    }
    if offset > 0 {
        links.push(format!(
            "{}; rel=\"prev\"",
            target(offset.saturating_sub(limit))
        ));
    }
    (!links.is_empty()).then(|| links.join(", "))
}

/// The `(rel, target)` pairs of a `Link` header.
fn links(reply: &Reply) -> Vec<(String, String)> {
    let Some(header) = reply.header("link") else {
        return Vec::new();
    };
    header
        .split(", ")
        .map(|link| {
            let (target, rel) = link
                .strip_prefix('<')
                .and_then(|l| l.split_once(">; rel=\""))
                .and_then(|(t, r)| Some((t, r.strip_suffix('"')?)))
                .unwrap_or_else(|| panic!("malformed Link: {header}"));
            (rel.to_string(), target.to_string())
        })
        .collect()
}

fn rel(reply: &Reply, name: &str) -> Option<String> {
    links(reply)
        .into_iter()
        .find(|(rel, _)| rel == name)
        .map(|(_, target)| target)
}

/// Asserts a list page: 200, a plain JSON array, `X-Total-Count` equal to
/// `total`; returns the ids on the page.
#[track_caller]
fn page_of(reply: &Reply, total: usize) -> Vec<i64> {
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "content type {:?}",
        reply.header("content-type")
    );
    let total = total.to_string();
    assert_eq!(
        reply.header("x-total-count"),
        Some(total.as_str()),
        "X-Total-Count; body {}",
        reply.text
    );
    ids(&reply.json())
}

/// Walks a list `limit` rows at a time from its first page along the `next`
/// links, checking every page and its exact `Link` header, then back along
/// the `prev` links; each way every row is seen exactly once, in order.
async fn walk(
    app: &TestApp,
    token: &str,
    path: &str,
    filters: &[(&str, &str)],
    expected: &[i64],
    limit: usize,
) {
    let n = expected.len();
    let limit_s = limit.to_string();
    let mut next = Some(url(path, filters, &[("limit", &limit_s)]));
    let mut seen = Vec::new();
    let mut offset = 0;
    let mut last = None;
    while let Some(target) = next.take() {
        assert!(offset <= n, "walked past the end of {path} at {target}");
        let reply = app.get(&target, token).await;
        let page = page_of(&reply, n);
        assert_eq!(
            page,
            expected[offset..(offset + limit).min(n)],
            "page at offset {offset} of {target}"
        );
        assert_eq!(
            reply.header("link").map(str::to_string),
            expected_link(path, filters, limit, offset, n),
            "Link of {target}"
        );
        seen.extend(page);
        next = rel(&reply, "next");
        last = Some((offset, reply));
        offset += limit;
    }
    assert_eq!(seen, expected, "walking `next` from {path} {filters:?}");

    let (mut offset, mut reply) = last.expect("at least one page");
    let mut pages = vec![page_of(&reply, n)];
    while let Some(target) = rel(&reply, "prev") {
        reply = app.get(&target, token).await;
        offset -= limit;
        let page = page_of(&reply, n);
        assert_eq!(
            reply.header("link").map(str::to_string),
            expected_link(path, filters, limit, offset, n),
            "Link of {target}"
        );
        pages.push(page);
    }
    assert_eq!(offset, 0, "walking `prev` must end at the first page");
    let back: Vec<i64> = pages.into_iter().rev().flatten().collect();
    assert_eq!(back, expected, "walking `prev` back from the last page");
}

/// The pagination contract on one list whose rows (under `filters`) are
/// `expected`, in order: default and extreme limits, `X-Total-Count`, exact
/// `Link` headers, walking, past-the-end offsets and refused limits.
async fn check_pagination(
    app: &TestApp,
    token: &str,
    path: &str,
    filters: &[(&str, &str)],
    expected: &[i64],
) {
    let n = expected.len();
    assert!(n <= 1000, "use a smaller list");

    // No limit: the first 100.
    let reply = app.get(&url(path, filters, &[]), token).await;
    assert_eq!(page_of(&reply, n), expected[..n.min(100)], "default page");
    assert_eq!(
        reply.header("link").map(str::to_string),
        expected_link(path, filters, 100, 0, n),
        "Link of the default page"
    );
    if n > 100 {
        let next = rel(&reply, "next").expect("next page");
        let reply = app.get(&next, token).await;
        assert_eq!(page_of(&reply, n), expected[100..], "second default page");
        assert_eq!(
            reply.header("link").map(str::to_string),
            expected_link(path, filters, 100, 100, n)
        );
    }

    // The smallest and the largest page.
    let reply = app.get(&url(path, filters, &[("limit", "1")]), token).await;
    assert_eq!(page_of(&reply, n), expected[..n.min(1)]);
    assert_eq!(
        reply.header("link").map(str::to_string),
        expected_link(path, filters, 1, 0, n)
    );
    let reply = app
        .get(&url(path, filters, &[("limit", "1000")]), token)
        .await;
    assert_eq!(page_of(&reply, n), expected, "limit=1000");
    assert_eq!(reply.header("link"), None, "one page holds everything");

    walk(app, token, path, filters, expected, 10).await;

    // The very last row: a prev link, no next.
    if n > 0 {
        let last = (n - 1).to_string();
        let reply = app
            .get(
                &url(path, filters, &[("limit", "5"), ("offset", &last)]),
                token,
            )
            .await;
        assert_eq!(page_of(&reply, n), expected[n - 1..]);
        assert_eq!(
            reply.header("link").map(str::to_string),
            expected_link(path, filters, 5, n - 1, n)
        );
    }

    // Past the end: an empty page, the right total, a way back and no way on.
    for beyond in [n, n + 5, n + 1000] {
        let offset = beyond.to_string();
        let reply = app
            .get(
                &url(path, filters, &[("limit", "20"), ("offset", &offset)]),
                token,
            )
            .await;
        assert_eq!(page_of(&reply, n), Vec::<i64>::new(), "offset {beyond}");
        let found = links(&reply);
        assert_eq!(
            found.len(),
            1,
            "only `prev` past the end: {:?}",
            reply.header("link")
        );
        assert_eq!(found[0].0, "prev");
        assert!(
            found[0]
                .1
                .starts_with(&url(path, filters, &[("limit", "20")])),
            "prev keeps the filters and the limit: {}",
            found[0].1
        );
    }

    // Refused limits and offsets: 400 problems naming the parameter.
    for bad in ["0", "1001", "-1", "abc", "1.5", "99999999999999999999999"] {
        let reply = app.get(&url(path, filters, &[("limit", bad)]), token).await;
        reply.field_error("limit");
    }
    for bad in ["-1", "abc", "1.5"] {
        let reply = app
            .get(&url(path, filters, &[("offset", bad)]), token)
            .await;
        reply.field_error("offset");
    }
}

/// Creates a patient with exactly these fields.
async fn patient(app: &TestApp, token: &str, name: &str, age: i64, gender: &str) -> Value {
    let reply = app
        .post(
            "/api/patients/",
            Some(token),
            json!({"name": name, "age": age, "gender": gender}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()
}

async fn doctor(app: &TestApp, token: &str, name: &str, specialization: &str) -> Value {
    let reply = app
        .post(
            "/api/doctors/",
            Some(token),
            json!({"name": name, "specialization": specialization}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()
}

async fn map(app: &TestApp, token: &str, patient: i64, doctor: i64) -> Value {
    let reply = app
        .post(
            "/api/mappings/",
            Some(token),
            json!({"patient": patient, "doctor": doctor}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()
}

fn timestamp(value: &Value, field: &str) -> DateTime<Utc> {
    value[field]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("no {field}: {value}"))
        .with_timezone(&Utc)
}

/// Ids of `rows` sorted by `key` with `id` breaking ties; descending reverses
/// both (so equal keys come out in descending id order).
fn sorted_ids<K: Ord>(rows: &[Value], key: impl Fn(&Value) -> K, descending: bool) -> Vec<i64> {
    let mut keyed: Vec<(K, i64)> = rows.iter().map(|r| (key(r), id_of(r))).collect();
    keyed.sort();
    if descending {
        keyed.reverse();
    }
    keyed.into_iter().map(|(_, id)| id).collect()
}

// ---------------------------------------------------------------------------
// Pagination on every list endpoint
// ---------------------------------------------------------------------------

#[tokio::test]
async fn patient_list_pagination_totals_and_links() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;
    // Someone else's patient never counts.
    patient(&app, &other.access, "Rock & Roll elsewhere", 40, "Male").await;

    let mut rows = Vec::new();
    for i in 0..105i64 {
        let name = if i % 3 == 0 {
            format!("Rock & Roll {i:03}")
        } else {
            format!("Patient {i:03}")
        };
        let age = (i * 7) % 151;
        rows.push(patient(&app, &user.access, &name, age, GENDERS[i as usize % 4]).await);
    }
    let all: Vec<i64> = rows.iter().map(id_of).collect();

    check_pagination(&app, &user.access, "/api/patients/", &[], &all).await;

    // The same list without the trailing slash.
    let reply = app
        .get("/api/patients?limit=2&offset=1", &user.access)
        .await;
    assert_eq!(page_of(&reply, 105), all[1..3]);
    assert_eq!(
        reply.header("link"),
        Some(
            "</api/patients/?limit=2&offset=3>; rel=\"next\", \
             </api/patients/?limit=2&offset=0>; rel=\"prev\""
        )
    );

    // A search with a space and an `&`, kept URL-encoded in every link.
    let rock: Vec<&Value> = rows
        .iter()
        .filter(|r| r["name"].as_str().unwrap().starts_with("Rock"))
        .collect();
    let rock_ids: Vec<i64> = rock.iter().map(|r| id_of(r)).collect();
    assert_eq!(rock_ids.len(), 35);
    let first = app
        .get("/api/patients/?search=k+%26+r&limit=10", &user.access)
        .await;
    assert_eq!(page_of(&first, 35), rock_ids[..10]);
    assert_eq!(
        first.header("link"),
        Some("</api/patients/?search=k+%26+r&limit=10&offset=10>; rel=\"next\"")
    );
    let middle = app
        .get(
            "/api/patients/?search=k%20%26%20r&limit=10&offset=10",
            &user.access,
        )
        .await;
    assert_eq!(page_of(&middle, 35), rock_ids[10..20]);
    assert_eq!(
        middle.header("link"),
        Some(
            "</api/patients/?search=k+%26+r&limit=10&offset=20>; rel=\"next\", \
             </api/patients/?search=k+%26+r&limit=10&offset=0>; rel=\"prev\""
        )
    );
    let last = app
        .get(
            "/api/patients/?search=k+%26+r&limit=10&offset=30",
            &user.access,
        )
        .await;
    assert_eq!(page_of(&last, 35), rock_ids[30..]);
    assert_eq!(
        last.header("link"),
        Some("</api/patients/?search=k+%26+r&limit=10&offset=20>; rel=\"prev\"")
    );
    check_pagination(
        &app,
        &user.access,
        "/api/patients/",
        &[("search", "k & r")],
        &rock_ids,
    )
    .await;

    // Every filter and an ordering at once, all kept in the links.
    let mut chosen: Vec<&Value> = rows
        .iter()
        .filter(|r| {
            let age = r["age"].as_i64().unwrap();
            r["name"].as_str().unwrap().starts_with("Rock")
                && r["gender"] != "Male"
                && (20..=120).contains(&age)
        })
        .collect();
    chosen.sort_by_key(|r| {
        (
            std::cmp::Reverse(r["age"].as_i64()),
            std::cmp::Reverse(id_of(r)),
        )
    });
    let female: Vec<i64> = chosen
        .iter()
        .filter(|r| r["gender"] == "Female")
        .map(|r| id_of(r))
        .collect();
    assert!(female.len() >= 3, "{female:?}");
    walk(
        &app,
        &user.access,
        "/api/patients/",
        &[
            ("search", "K & R"),
            ("gender", "Female"),
            ("min_age", "20"),
            ("max_age", "120"),
            ("ordering", "-age"),
        ],
        &female,
        2,
    )
    .await;

    // Descending ids, page by page.
    let reversed: Vec<i64> = all.iter().rev().copied().collect();
    walk(
        &app,
        &user.access,
        "/api/patients/",
        &[("ordering", "-id")],
        &reversed,
        25,
    )
    .await;

    // The largest offset accepted is still just an empty page.
    let reply = app
        .get("/api/patients/?offset=9007199254740991", &user.access)
        .await;
    assert_eq!(page_of(&reply, 105), Vec::<i64>::new());
}

#[tokio::test]
async fn doctor_and_mapping_lists_pagination_totals_and_links() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;
    let prefix = unique("Pager");
    let lower = prefix.to_lowercase();
    let specialization = format!("Spec{lower}");

    let mut doctors = Vec::new();
    for i in 0..105 {
        let spec = if i % 2 == 0 {
            specialization.clone()
        } else {
            format!("Other{lower}")
        };
        doctors.push(doctor(&app, &user.access, &format!("{prefix} No {i:03}"), &spec).await);
    }
    let doctor_ids: Vec<i64> = doctors.iter().map(id_of).collect();

    // Doctors are shared: isolate ours by a name nobody else uses.
    check_pagination(
        &app,
        &user.access,
        "/api/doctors/",
        &[("search", &lower)],
        &doctor_ids,
    )
    .await;
    // A filtered, reordered walk (as another user: doctors are everyone's).
    let even_desc: Vec<i64> = doctor_ids.iter().step_by(2).rev().copied().collect();
    let upper_spec = specialization.to_uppercase();
    walk(
        &app,
        &other.access,
        "/api/doctors/",
        &[
            ("search", &prefix),
            ("specialization", &upper_spec),
            ("ordering", "-name"),
        ],
        &even_desc,
        7,
    )
    .await;

    // Mappings: one patient with every doctor, another with three.
    let first = id_of(&app.create_patient(&user.access, "Many Doctors").await);
    let second = id_of(&app.create_patient(&user.access, "Few Doctors").await);
    let mut first_maps = Vec::new();
    for d in &doctor_ids {
        first_maps.push(id_of(&map(&app, &user.access, first, *d).await));
    }
    let mut second_maps = Vec::new();
    for d in &doctor_ids[..3] {
        second_maps.push(id_of(&map(&app, &user.access, second, *d).await));
    }
    // Another user's mapping of the same doctor is never listed.
    let theirs = id_of(&app.create_patient(&other.access, "Not Yours").await);
    map(&app, &other.access, theirs, doctor_ids[0]).await;

    let all_maps: Vec<i64> = first_maps.iter().chain(&second_maps).copied().collect();
    check_pagination(&app, &user.access, "/api/mappings/", &[], &all_maps).await;
    let first_s = first.to_string();
    check_pagination(
        &app,
        &user.access,
        "/api/mappings/",
        &[("patient", &first_s)],
        &first_maps,
    )
    .await;
    let doctor_s = doctor_ids[0].to_string();
    walk(
        &app,
        &user.access,
        "/api/mappings/",
        &[("doctor", &doctor_s)],
        &[first_maps[0], second_maps[0]],
        1,
    )
    .await;
    let newest_first: Vec<i64> = first_maps.iter().rev().copied().collect();
    walk(
        &app,
        &user.access,
        "/api/mappings/",
        &[("patient", &first_s), ("ordering", "-created_at")],
        &newest_first,
        25,
    )
    .await;

    // The per-patient lists.
    check_pagination(
        &app,
        &user.access,
        &format!("/api/mappings/{first}/"),
        &[],
        &first_maps,
    )
    .await;
    check_pagination(
        &app,
        &user.access,
        &format!("/api/patients/{first}/doctors/"),
        &[],
        &doctor_ids,
    )
    .await;
    check_pagination(
        &app,
        &user.access,
        &format!("/api/mappings/{second}/"),
        &[],
        &second_maps,
    )
    .await;
    check_pagination(
        &app,
        &user.access,
        &format!("/api/patients/{second}/doctors/"),
        &[],
        &doctor_ids[..3],
    )
    .await;

    // Without the trailing slash, the links still name the canonical path.
    let reply = app
        .get(&format!("/api/mappings/{second}?limit=1"), &user.access)
        .await;
    assert_eq!(page_of(&reply, 3), second_maps[..1]);
    assert_eq!(
        reply.header("link").map(str::to_string),
        Some(format!(
            "</api/mappings/{second}/?limit=1&offset=1>; rel=\"next\""
        ))
    );
    let reply = app
        .get(
            &format!("/api/patients/{second}/doctors?limit=2&offset=1"),
            &user.access,
        )
        .await;
    assert_eq!(page_of(&reply, 3), doctor_ids[1..3]);
    assert_eq!(
        reply.header("link").map(str::to_string),
        Some(format!(
            "</api/patients/{second}/doctors/?limit=2&offset=0>; rel=\"prev\""
        ))
    );
}

#[tokio::test]
async fn empty_lists_have_a_zero_total_and_no_links() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = id_of(&app.create_patient(&user.access, "Lonely").await);
    let nobody = unique("Nobody");
    for path in [
        "/api/mappings/".to_string(),
        format!("/api/mappings/{pid}/"),
        format!("/api/patients/{pid}/doctors/"),
        format!("/api/doctors/?search={nobody}"),
        format!("/api/patients/?search={nobody}"),
    ] {
        let reply = app.get(&path, &user.access).await;
        assert_eq!(page_of(&reply, 0), Vec::<i64>::new(), "{path}");
        assert_eq!(reply.text.trim(), "[]", "{path}");
        assert_eq!(reply.header("link"), None, "{path}");
    }
    // An offset into an empty list is still an empty page.
    let reply = app
        .get(&format!("/api/mappings/{pid}/?offset=10"), &user.access)
        .await;
    assert_eq!(page_of(&reply, 0), Vec::<i64>::new());
}

/// `X-Total-Count` of the unfiltered patient list (as the caller sees it).
pub(crate) async fn patient_total(app: &TestApp, token: &str, query: &str) -> u64 {
    let reply = app.get(&format!("/api/patients/{query}"), token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply
        .header("x-total-count")
        .and_then(|t| t.parse().ok())
        .expect("X-Total-Count")
}

/// Owners whose kept count differs from their rows, read in one statement
/// (one snapshot, so concurrent tests cannot make it flicker).
pub(crate) async fn miscounted_owners(app: &TestApp) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let backend = app.db.get_database_backend();
    let sql = "SELECT count(*) AS n FROM (SELECT created_by, count(*) AS rows_n FROM patients WHERE deleted_at IS NULL GROUP BY created_by) AS p
               FULL JOIN (SELECT owner_id, sum(n) AS kept FROM patient_counts GROUP BY owner_id) AS c
                 ON c.owner_id = p.created_by
               WHERE coalesce(c.kept, 0) <> coalesce(p.rows_n, 0)";
    let row = app
        .db
        .query_one_raw(Statement::from_string(backend, sql))
        .await
        .expect("count query")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("n")
}

/// The unfiltered total comes from a count the database keeps beside the
/// rows (a page must not cost more with more rows); it must stay exact
/// through API writes, writes made by SQL behind the API's back, past the
/// end of the list, and for administrators. (Concurrent writes:
/// `concurrency::racing_creates_and_deletes_keep_the_total_exact`.)
#[tokio::test]
async fn unfiltered_totals_stay_exact_through_every_kind_of_write() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    assert_eq!(patient_total(&app, &bob.access, "").await, 0);
    assert_eq!(patient_total(&app, &bob.access, "?offset=5").await, 0);

    let mut created = Vec::new();
    for i in 0..16 {
        created.push(id_of(
            &app.create_patient(&alice.access, &format!("Many {i}"))
                .await,
        ));
    }
    assert_eq!(patient_total(&app, &alice.access, "?limit=5").await, 16);
    for id in &created[..8] {
        let reply = app
            .delete(&format!("/api/patients/{id}/"), &alice.access)
            .await;
        assert_eq!(reply.status, 204);
    }
    // A failed delete (someone else's patient) changes nothing.
    let reply = app
        .delete(&format!("/api/patients/{}/", created[8]), &bob.access)
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(patient_total(&app, &alice.access, "").await, 8);
    // Past the end the page is empty, the total still exact.
    let reply = app.get("/api/patients/?offset=8", &alice.access).await;
    assert_eq!(page_of(&reply, 8), Vec::<i64>::new());
    assert_eq!(patient_total(&app, &bob.access, "").await, 0);

    // Rows written by SQL (a bulk import, a console fix) are counted too.
    let now = "CURRENT_TIMESTAMP";
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO patients (name, name_key, age, gender, created_by, created_at, updated_at, version)
             VALUES ('Imported A', 'imported a', 40, 'Other', {a}, {now}, {now}, 1),
                    ('Imported B', 'imported b', 41, 'Other', {a}, {now}, {now}, 1),
                    ('Imported C', 'imported c', 42, 'Other', {b}, {now}, {now}, 1)",
            a = alice.id,
            b = bob.id
        ))
        .await
        .expect("insert by SQL");
    assert_eq!(patient_total(&app, &alice.access, "").await, 10);
    assert_eq!(patient_total(&app, &bob.access, "").await, 1);
    app.db
        .execute_unprepared(&format!(
            "DELETE FROM patients WHERE created_by = {} AND name LIKE 'Imported%'",
            alice.id
        ))
        .await
        .expect("delete by SQL");
    assert_eq!(patient_total(&app, &alice.access, "?offset=100").await, 8);
    // Moving a row to another owner moves it in the counts.
    app.db
        .execute_unprepared(&format!(
            "UPDATE patients SET created_by = {} WHERE id = {}",
            bob.id, created[15]
        ))
        .await
        .expect("move by SQL");
    assert_eq!(patient_total(&app, &alice.access, "").await, 7);
    assert_eq!(patient_total(&app, &bob.access, "").await, 2);
    // A filtered list counts rows; it agrees with the kept count.
    assert_eq!(patient_total(&app, &alice.access, "?min_age=0").await, 7);

    // An administrator's total covers every owner.
    let admin = app.user().await;
    let admin = app.make_admin(&admin).await;
    let everyone = patient_total(&app, &admin.access, "?limit=1").await;
    let past_end = patient_total(&app, &admin.access, "?offset=9007199254740991").await;
    assert!(everyone >= 9 && past_end >= 9, "{everyone} {past_end}");
    if app.is_sqlite() {
        // Its own database file: nobody else writes to it.
        let rows =
            app.patient_rows_of(alice.id).await.len() + app.patient_rows_of(bob.id).await.len();
        assert_eq!(everyone, u64::try_from(rows).expect("count"));
        assert_eq!(past_end, everyone);
    }
    assert_eq!(miscounted_owners(&app).await, 0);
}

#[tokio::test]
async fn per_patient_lists_of_someone_elses_patient_are_not_found() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let other = app.user().await;
    let pid = id_of(&app.create_patient(&owner.access, "Private").await);
    let did = id_of(&app.create_doctor(&owner.access, &unique("Dr ")).await);
    map(&app, &owner.access, pid, did).await;
    for path in [
        format!("/api/mappings/{pid}/"),
        format!("/api/patients/{pid}/doctors/"),
        format!("/api/mappings/{pid}/?limit=1&offset=0"),
        format!("/api/patients/{pid}/doctors/?limit=1000"),
    ] {
        app.get(&path, &other.access).await.problem(404);
    }
    // Filtering the general list by someone else's patient finds nothing.
    let reply = app
        .get(&format!("/api/mappings/?patient={pid}"), &other.access)
        .await;
    assert_eq!(page_of(&reply, 0), Vec::<i64>::new());
    let reply = app
        .get(&format!("/api/mappings/?doctor={did}"), &other.access)
        .await;
    assert_eq!(page_of(&reply, 0), Vec::<i64>::new());
}

// ---------------------------------------------------------------------------
// Patient filters and ordering
// ---------------------------------------------------------------------------

#[tokio::test]
async fn patient_search_is_a_case_insensitive_literal_substring() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;
    patient(&app, &other.access, "Alice Elsewhere", 30, "Female").await;
    let mut by_name = std::collections::HashMap::new();
    for name in [
        "Alice",
        "Natalie",
        "Bob",
        "KALI",
        "100% Fit",
        "100x Fit",
        "snake_case",
        "snakeXcase",
        "back\\slash",
        "Rock & Roll",
    ] {
        by_name.insert(
            name,
            id_of(&patient(&app, &user.access, name, 30, "Other").await),
        );
    }
    let expect = |names: &[&str]| -> Vec<i64> {
        let mut v: Vec<i64> = names.iter().map(|n| by_name[n]).collect();
        v.sort();
        v
    };
    let cases: &[(&str, &[&str])] = &[
        ("ali", &["Alice", "Natalie", "KALI"]),
        ("ALI", &["Alice", "Natalie", "KALI"]),
        ("aLiC", &["Alice"]),
        ("nat", &["Natalie"]),
        ("%", &["100% Fit"]),
        ("0%", &["100% Fit"]),
        ("0% f", &["100% Fit"]),
        ("_", &["snake_case"]),
        ("e_c", &["snake_case"]),
        ("\\", &["back\\slash"]),
        ("k\\s", &["back\\slash"]),
        ("&", &["Rock & Roll"]),
        ("k & r", &["Rock & Roll"]),
        ("zzz", &[]),
        ("%%", &[]),
        ("'", &[]),
    ];
    for (term, names) in cases {
        let path = url("/api/patients/", &[("search", term)], &[]);
        let reply = app.get(&path, &user.access).await;
        let expected = expect(names);
        assert_eq!(page_of(&reply, expected.len()), expected, "search {term:?}");
    }
}

/// Names are not only ASCII: "case-insensitive" holds for é/É and ø/Ø too.
#[tokio::test]
async fn patient_search_ignores_case_beyond_ascii() {
    let app = spawn_app().await;
    let user = app.user().await;
    let elodie = id_of(&patient(&app, &user.access, "Élodie Durand", 30, "Female").await);
    let oyvind = id_of(&patient(&app, &user.access, "Øyvind Ås", 40, "Male").await);
    let mut wrong = Vec::new();
    for (term, expected) in [
        ("Élodie", elodie),
        ("élodie", elodie),
        ("ÉLODIE", elodie),
        ("Øyvind", oyvind),
        ("øyvind", oyvind),
        ("ØYVIND", oyvind),
        ("ås", oyvind),
    ] {
        let reply = app
            .get(
                &url("/api/patients/", &[("search", term)], &[]),
                &user.access,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let found = ids(&reply.json());
        if found != vec![expected] || reply.header("x-total-count") != Some("1") {
            wrong.push(format!(
                "search {term:?} found {found:?}, expected [{expected}]"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("; "));
}

#[tokio::test]
async fn patient_gender_and_age_filters_are_exact_and_inclusive() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;
    patient(&app, &other.access, "Theirs", 30, "Male").await;
    let mut rows = Vec::new();
    for (i, age) in [0, 17, 18, 30, 65, 66, 150, 30].into_iter().enumerate() {
        let name = format!("Age {age} #{i}");
        rows.push(patient(&app, &user.access, &name, age, GENDERS[i % 4]).await);
    }
    let select = |f: &dyn Fn(&Value) -> bool| -> Vec<i64> {
        rows.iter().filter(|r| f(r)).map(id_of).collect()
    };
    let age = |r: &Value| r["age"].as_i64().unwrap();

    for gender in GENDERS {
        let reply = app
            .get(&format!("/api/patients/?gender={gender}"), &user.access)
            .await;
        let expected = select(&|r| r["gender"] == gender);
        assert!(!expected.is_empty());
        assert_eq!(page_of(&reply, expected.len()), expected, "{gender}");
    }

    let cases: &[(&str, Vec<i64>)] = &[
        ("min_age=18", select(&|r| age(r) >= 18)),
        ("max_age=65", select(&|r| age(r) <= 65)),
        (
            "min_age=18&max_age=65",
            select(&|r| (18..=65).contains(&age(r))),
        ),
        ("min_age=30&max_age=30", select(&|r| age(r) == 30)),
        ("min_age=0&max_age=150", select(&|_| true)),
        ("min_age=0&max_age=0", select(&|r| age(r) == 0)),
        ("min_age=150", select(&|r| age(r) == 150)),
        ("min_age=66&max_age=65", vec![]),
        (
            "gender=Other&min_age=18&max_age=66",
            select(&|r| r["gender"] == "Other" && (18..=66).contains(&age(r))),
        ),
        (
            "search=age%203&gender=Unknown&min_age=30",
            select(&|r| r["gender"] == "Unknown" && age(r) >= 30 && age(r) < 40),
        ),
    ];
    for (query, expected) in cases {
        let reply = app
            .get(&format!("/api/patients/?{query}"), &user.access)
            .await;
        assert_eq!(page_of(&reply, expected.len()), *expected, "{query}");
    }
    // The combined filters appear in the links, in a stable order.
    let reply = app
        .get(
            "/api/patients/?max_age=66&gender=Unknown&min_age=18&limit=1",
            &user.access,
        )
        .await;
    let expected = select(&|r| r["gender"] == "Unknown" && (18..=66).contains(&age(r)));
    assert_eq!(expected.len(), 2);
    assert_eq!(page_of(&reply, 2), expected[..1]);
    assert_eq!(
        reply.header("link"),
        Some(
            "</api/patients/?gender=Unknown&min_age=18&max_age=66&limit=1&offset=1>; rel=\"next\""
        )
    );

    for (query, field) in [
        ("gender=male", "gender"),
        ("gender=M", "gender"),
        ("min_age=-1", "min_age"),
        ("min_age=151", "min_age"),
        ("min_age=abc", "min_age"),
        ("max_age=-1", "max_age"),
        ("max_age=151", "max_age"),
        ("max_age=1.5", "max_age"),
    ] {
        let reply = app
            .get(&format!("/api/patients/?{query}"), &user.access)
            .await;
        reply.field_error(field);
    }
}

#[tokio::test]
async fn patient_ordering_by_every_allowed_field_with_id_breaking_ties() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;
    patient(&app, &other.access, "Aardvark", 1, "Male").await;
    let mut ids_in_order = Vec::new();
    for (name, age) in [
        ("Bravo", 40),
        ("Alpha", 20),
        ("Charlie", 40),
        ("Alpha", 30),
        ("Bravo", 20),
        ("Delta", 0),
    ] {
        ids_in_order.push(id_of(
            &patient(&app, &user.access, name, age, "Unknown").await,
        ));
    }
    let p = &ids_in_order;
    // Change two of them, later one first, so updated_at is not id order.
    for i in [2, 0] {
        let reply = app
            .patch(
                &format!("/api/patients/{}/", p[i]),
                &user.access,
                json!({"gender": "Other"}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let rows = app
        .get("/api/patients/?limit=1000", &user.access)
        .await
        .json()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(ids(&Value::Array(rows.clone())), *p);

    let by_name = vec![p[1], p[3], p[0], p[4], p[2], p[5]];
    let by_age = vec![p[5], p[1], p[4], p[3], p[0], p[2]];
    let by_updated = vec![p[1], p[3], p[4], p[5], p[2], p[0]];
    assert_eq!(
        sorted_ids(&rows, |r| timestamp(r, "updated_at"), false),
        by_updated
    );
    let cases: Vec<(&str, Vec<i64>)> = vec![
        ("id", p.clone()),
        ("name", by_name),
        ("age", by_age),
        (
            "created_at",
            sorted_ids(&rows, |r| timestamp(r, "created_at"), false),
        ),
        ("updated_at", by_updated),
    ];
    for (field, ascending) in cases {
        let reply = app
            .get(&format!("/api/patients/?ordering={field}"), &user.access)
            .await;
        assert_eq!(page_of(&reply, 6), ascending, "ordering={field}");
        let descending: Vec<i64> = ascending.iter().rev().copied().collect();
        let reply = app
            .get(&format!("/api/patients/?ordering=-{field}"), &user.access)
            .await;
        assert_eq!(page_of(&reply, 6), descending, "ordering=-{field}");
        // Ties never make a row appear twice or vanish across pages.
        let ordering = format!("-{field}");
        walk(
            &app,
            &user.access,
            "/api/patients/",
            &[("ordering", &ordering)],
            &descending,
            1,
        )
        .await;
    }
    assert_eq!(
        sorted_ids(&rows, |r| timestamp(r, "created_at"), false),
        *p,
        "created one after another"
    );

    // Ordering with a filter.
    let reply = app
        .get("/api/patients/?search=alpha&ordering=-age", &user.access)
        .await;
    assert_eq!(page_of(&reply, 2), vec![p[3], p[1]]);
    let reply = app.get("/api/patients/?ordering=id", &user.access).await;
    assert_eq!(page_of(&reply, 6), *p);

    for bad in [
        "unknown",
        "password",
        "created_by",
        "gender",
        "Name",
        "--name",
        "+name",
        "name,age",
        "-",
        "name desc",
        "id;DROP TABLE patients",
    ] {
        let reply = app
            .get(
                &url("/api/patients/", &[("ordering", bad)], &[]),
                &user.access,
            )
            .await;
        reply.field_error("ordering");
    }
}

#[tokio::test]
async fn administrators_list_every_users_patients_and_mappings() {
    let app = spawn_app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let admin = app.user().await;
    let admin = app.make_admin(&admin).await;
    let tag = unique("Shared");
    let a1 = id_of(&patient(&app, &alice.access, &format!("{tag} A1"), 30, "Female").await);
    let b1 = id_of(&patient(&app, &bob.access, &format!("{tag} B1"), 40, "Male").await);
    let a2 = id_of(&patient(&app, &alice.access, &format!("{tag} A2"), 50, "Female").await);
    let did = id_of(&app.create_doctor(&alice.access, &unique("Dr ")).await);
    let ma = id_of(&map(&app, &alice.access, a1, did).await);
    let mb = id_of(&map(&app, &bob.access, b1, did).await);

    let search = [("search", tag.as_str())];
    let reply = app
        .get(&url("/api/patients/", &search, &[]), &admin.access)
        .await;
    assert_eq!(page_of(&reply, 3), vec![a1, b1, a2]);
    walk(
        &app,
        &admin.access,
        "/api/patients/",
        &search,
        &[a1, b1, a2],
        2,
    )
    .await;
    let reply = app
        .get(&url("/api/patients/", &search, &[]), &alice.access)
        .await;
    assert_eq!(page_of(&reply, 2), vec![a1, a2]);
    let reply = app
        .get(&url("/api/patients/", &search, &[]), &bob.access)
        .await;
    assert_eq!(page_of(&reply, 1), vec![b1]);
    // The admin's unfiltered list holds both users' patients.
    let everyone = app
        .get("/api/patients/?limit=1000&ordering=-id", &admin.access)
        .await;
    assert_eq!(everyone.status, 200);
    let listed = ids(&everyone.json());
    for id in [a1, b1, a2] {
        assert!(listed.contains(&id), "{id} not in the admin's list");
    }
    let total: u64 = everyone
        .header("x-total-count")
        .and_then(|t| t.parse().ok())
        .expect("X-Total-Count");
    assert!(total >= 3);

    let reply = app
        .get(&format!("/api/mappings/?doctor={did}"), &admin.access)
        .await;
    assert_eq!(page_of(&reply, 2), vec![ma, mb]);
    let reply = app
        .get(&format!("/api/mappings/?doctor={did}"), &alice.access)
        .await;
    assert_eq!(page_of(&reply, 1), vec![ma]);
    let reply = app
        .get(&format!("/api/mappings/{b1}/"), &admin.access)
        .await;
    assert_eq!(page_of(&reply, 1), vec![mb]);
    let reply = app
        .get(&format!("/api/patients/{b1}/doctors/"), &admin.access)
        .await;
    assert_eq!(page_of(&reply, 1), vec![did]);
}

// ---------------------------------------------------------------------------
// Doctor filters and ordering
// ---------------------------------------------------------------------------

#[tokio::test]
async fn doctor_search_and_specialization_filters() {
    let app = spawn_app().await;
    let user = app.user().await;
    let reader = app.user().await;
    let u = unique("Dsrch");
    let spec = unique("Cardio");
    let mut by_name = std::collections::HashMap::new();
    for (suffix, specialization) in [
        ("Gregory House", spec.clone()),
        ("Lisa Cuddy", spec.to_uppercase()),
        ("James Wilson", spec.to_lowercase()),
        ("50% Off", format!("{spec} Extra")),
        ("50x Off", format!("Pre{spec}")),
        ("under_score", "Neurology".to_string()),
        ("underXscore", "Neurology".to_string()),
    ] {
        let name = format!("{u} {suffix}");
        by_name.insert(
            suffix,
            id_of(&doctor(&app, &user.access, &name, &specialization).await),
        );
    }
    let expect = |names: &[&str]| -> Vec<i64> {
        let mut v: Vec<i64> = names.iter().map(|n| by_name[n]).collect();
        v.sort();
        v
    };
    let lower = u.to_lowercase();
    let upper = u.to_uppercase();
    let all = [
        "Gregory House",
        "Lisa Cuddy",
        "James Wilson",
        "50% Off",
        "50x Off",
        "under_score",
        "underXscore",
    ];
    let house = format!("{lower} greg");
    let percent = format!("{u} 50%");
    let underscore = format!("{u} under_");
    let spec_lower = spec.to_lowercase();
    let spec_upper = spec.to_uppercase();
    let extra = format!("{spec} extra");
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<i64>);
    let cases: Vec<Case> = vec![
        (vec![("search", &u)], expect(&all)),
        (vec![("search", &lower)], expect(&all)),
        (vec![("search", &upper)], expect(&all)),
        (vec![("search", &house)], expect(&["Gregory House"])),
        (vec![("search", &percent)], expect(&["50% Off"])),
        (vec![("search", &underscore)], expect(&["under_score"])),
        (
            vec![("specialization", &spec_lower)],
            expect(&["Gregory House", "Lisa Cuddy", "James Wilson"]),
        ),
        (
            vec![("specialization", &spec_upper)],
            expect(&["Gregory House", "Lisa Cuddy", "James Wilson"]),
        ),
        (vec![("specialization", &extra)], expect(&["50% Off"])),
        (
            vec![("search", &house), ("specialization", &spec)],
            expect(&["Gregory House"]),
        ),
        (
            vec![("search", "lisa cuddy"), ("specialization", &spec)],
            expect(&["Lisa Cuddy"]),
        ),
        (
            vec![("search", &percent), ("specialization", &spec)],
            vec![],
        ),
    ];
    for (filters, expected) in &cases {
        let reply = app
            .get(&url("/api/doctors/", filters, &[]), &reader.access)
            .await;
        assert_eq!(page_of(&reply, expected.len()), *expected, "{filters:?}");
    }
    // Specialization is an exact match, not a substring one.
    let partial = &spec[..spec.len() - 2];
    let reply = app
        .get(
            &url("/api/doctors/", &[("specialization", partial)], &[]),
            &reader.access,
        )
        .await;
    assert_eq!(page_of(&reply, 0), Vec::<i64>::new());
    // The filters stay in the links, encoded.
    let reply = app
        .get(
            &url(
                "/api/doctors/",
                &[("search", &percent), ("specialization", &extra)],
                &[("limit", "1"), ("offset", "1")],
            ),
            &reader.access,
        )
        .await;
    assert_eq!(page_of(&reply, 1), Vec::<i64>::new());
    assert_eq!(
        reply.header("link").map(str::to_string),
        Some(format!(
            "</api/doctors/?search={u}+50%25&specialization={spec}+extra&limit=1&offset=0>; rel=\"prev\""
        ))
    );
}

/// The same beyond ASCII for doctors' `search` and `specialization`.
#[tokio::test]
async fn doctor_filters_ignore_case_beyond_ascii() {
    let app = spawn_app().await;
    let user = app.user().await;
    let u = unique("");
    let name = format!("Dr Émile Öberg {u}");
    let spec = format!("Ästhetik {u}");
    let id = id_of(&doctor(&app, &user.access, &name, &spec).await);
    let mut wrong = Vec::new();
    for filters in [
        vec![("search", name.clone())],
        vec![("search", format!("émile öberg {u}"))],
        vec![("search", format!("ÉMILE ÖBERG {u}"))],
        vec![("specialization", spec.clone())],
        vec![("specialization", format!("ästhetik {u}"))],
        vec![("specialization", format!("ÄSTHETIK {u}"))],
    ] {
        let pairs: Vec<(&str, &str)> = filters.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = app
            .get(&url("/api/doctors/", &pairs, &[]), &user.access)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let found = ids(&reply.json());
        if found != vec![id] || reply.header("x-total-count") != Some("1") {
            wrong.push(format!("{pairs:?} found {found:?}, expected [{id}]"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("; "));
}

#[tokio::test]
async fn doctor_ordering_by_every_allowed_field_with_id_breaking_ties() {
    let app = spawn_app().await;
    let user = app.user().await;
    let spec = unique("Ordering");
    let mut d = Vec::new();
    for name in ["Bravo", "Alpha", "Charlie", "Alpha"] {
        d.push(id_of(&doctor(&app, &user.access, name, &spec).await));
    }
    let filter = [("specialization", spec.as_str())];
    let rows = app
        .get(&url("/api/doctors/", &filter, &[]), &user.access)
        .await
        .json()
        .as_array()
        .unwrap()
        .clone();
    let by_created = sorted_ids(&rows, |r| timestamp(r, "created_at"), false);
    assert_eq!(by_created, d, "created one after another");
    let cases: Vec<(&str, Vec<i64>)> = vec![
        ("id", d.clone()),
        ("name", vec![d[1], d[3], d[0], d[2]]),
        // Every row has the same specialization: id decides.
        ("specialization", d.clone()),
        ("created_at", by_created),
    ];
    for (field, ascending) in cases {
        let descending: Vec<i64> = ascending.iter().rev().copied().collect();
        for (ordering, expected) in [
            (field.to_string(), ascending),
            (format!("-{field}"), descending),
        ] {
            let reply = app
                .get(
                    &url("/api/doctors/", &filter, &[("ordering", &ordering)]),
                    &user.access,
                )
                .await;
            assert_eq!(page_of(&reply, 4), expected, "ordering={ordering}");
            // `ordering=id` is the default, which the links leave out.
            let walk_filters = if ordering == "id" {
                vec![filter[0]]
            } else {
                vec![filter[0], ("ordering", ordering.as_str())]
            };
            walk(
                &app,
                &user.access,
                "/api/doctors/",
                &walk_filters,
                &expected,
                1,
            )
            .await;
        }
    }

    // Ordering by specialization across different ones.
    let prefix = unique("Spc");
    let mut s = Vec::new();
    for suffix in ["B", "A", "C", "A"] {
        let spec = format!("{prefix}{suffix}");
        s.push(id_of(
            &doctor(&app, &user.access, &format!("{prefix} doc"), &spec).await,
        ));
    }
    let search = [("search", prefix.as_str())];
    let reply = app
        .get(
            &url("/api/doctors/", &search, &[("ordering", "specialization")]),
            &user.access,
        )
        .await;
    assert_eq!(page_of(&reply, 4), vec![s[1], s[3], s[0], s[2]]);
    let reply = app
        .get(
            &url("/api/doctors/", &search, &[("ordering", "-specialization")]),
            &user.access,
        )
        .await;
    assert_eq!(page_of(&reply, 4), vec![s[2], s[0], s[3], s[1]]);

    for bad in ["unknown", "password", "created_by", "age", "Name", "--id"] {
        let reply = app
            .get(
                &url("/api/doctors/", &filter, &[("ordering", bad)]),
                &user.access,
            )
            .await;
        reply.field_error("ordering");
    }
}

// ---------------------------------------------------------------------------
// Mapping filters and ordering
// ---------------------------------------------------------------------------

#[tokio::test]
async fn mapping_filters_and_ordering() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;
    let p1 = id_of(&app.create_patient(&user.access, "First").await);
    let p2 = id_of(&app.create_patient(&user.access, "Second").await);
    let d: Vec<i64> = {
        let mut d = Vec::new();
        for _ in 0..3 {
            d.push(id_of(
                &app.create_doctor(&other.access, &unique("Dr ")).await,
            ));
        }
        d
    };
    let mut m = Vec::new();
    for (p, doc) in [(p1, d[0]), (p2, d[0]), (p1, d[1]), (p2, d[2])] {
        m.push(map(&app, &user.access, p, doc).await);
    }
    let mid: Vec<i64> = m.iter().map(id_of).collect();
    // Someone else's mapping of the same doctor.
    let theirs = id_of(&app.create_patient(&other.access, "Theirs").await);
    map(&app, &other.access, theirs, d[0]).await;

    let cases: Vec<(String, Vec<i64>)> = vec![
        (String::new(), mid.clone()),
        (format!("patient={p1}"), vec![mid[0], mid[2]]),
        (format!("patient={p2}"), vec![mid[1], mid[3]]),
        (format!("doctor={}", d[0]), vec![mid[0], mid[1]]),
        (format!("doctor={}", d[2]), vec![mid[3]]),
        (format!("patient={p1}&doctor={}", d[0]), vec![mid[0]]),
        (format!("patient={p1}&doctor={}", d[2]), vec![]),
        (format!("patient={theirs}"), vec![]),
        ("patient=999999999999".to_string(), vec![]),
        ("ordering=id".to_string(), mid.clone()),
        (
            "ordering=-id".to_string(),
            mid.iter().rev().copied().collect(),
        ),
        (
            "ordering=created_at".to_string(),
            sorted_ids(&m, |r| timestamp(r, "created_at"), false),
        ),
        (
            "ordering=-created_at".to_string(),
            sorted_ids(&m, |r| timestamp(r, "created_at"), true),
        ),
        (
            format!("doctor={}&ordering=-created_at", d[0]),
            vec![mid[1], mid[0]],
        ),
    ];
    assert_eq!(cases[11].1, mid, "created one after another");
    for (query, expected) in &cases {
        let reply = app
            .get(&format!("/api/mappings/?{query}"), &user.access)
            .await;
        assert_eq!(page_of(&reply, expected.len()), *expected, "{query}");
        // Each item is a whole mapping.
        for item in reply.json().as_array().unwrap() {
            assert_eq!(item["doctor_detail"]["id"], item["doctor"], "{item}");
            assert!(item["patient"] == p1 || item["patient"] == p2, "{item}");
        }
    }
    let reply = app
        .get(
            &format!(
                "/api/mappings/?patient={p2}&doctor={}&ordering=-created_at&limit=1",
                d[0]
            ),
            &user.access,
        )
        .await;
    assert_eq!(page_of(&reply, 1), vec![mid[1]]);
    assert_eq!(reply.header("link"), None);
    let reply = app
        .get(
            &format!("/api/mappings/?patient={p2}&ordering=-id&limit=1"),
            &user.access,
        )
        .await;
    assert_eq!(page_of(&reply, 2), vec![mid[3]]);
    assert_eq!(
        reply.header("link").map(str::to_string),
        Some(format!(
            "</api/mappings/?patient={p2}&ordering=-id&limit=1&offset=1>; rel=\"next\""
        ))
    );

    for (query, field) in [
        ("ordering=unknown", "ordering"),
        ("ordering=password", "ordering"),
        ("ordering=patient__created_by", "ordering"),
        ("ordering=-", "ordering"),
        ("patient=abc", "patient"),
        ("doctor=1.5", "doctor"),
    ] {
        let reply = app
            .get(&format!("/api/mappings/?{query}"), &user.access)
            .await;
        reply.field_error(field);
    }
}

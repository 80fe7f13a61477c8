//! The OpenAPI document at `/v1/openapi.json`: served without a key, and it documents every
//! route of the router concretely. The router is built from the same annotated handlers
//! (`OpenApiRouter`), so these tests check the other direction and the details: every
//! documented operation is really routed, and no operation is documented only in name.

mod common;

use axum::http::StatusCode;
use common::app;
use serde_json::Value;

/// The document as a client fetches it: no key needed.
async fn document() -> Value {
    let app = app().await;
    let (status, doc, content_type) = app.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    doc
}

/// Every (method, path) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            if ["get", "post", "patch", "put", "delete"].contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
    }
    out
}

/// A concrete URI for a path template.
fn concrete(path: &str) -> String {
    path.replace("{file}", "x.gif")
        .replace("{address}", "a@example.com")
        .split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Follows a `$ref` to `#/components/schemas/NAME`.
fn schema_name(schema: &Value) -> Option<&str> {
    schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
}

#[tokio::test]
async fn the_document_is_openapi_3_with_bearer_keys_and_problem_errors() {
    let doc = document().await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc, serde_json::to_value(mailtrail_api::openapi()).unwrap());
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (scheme["type"].as_str(), scheme["scheme"].as_str()),
        (Some("http"), Some("bearer"))
    );
    let problem = &doc["components"]["schemas"]["Problem"];
    for field in ["type", "title", "status", "detail", "errors"] {
        assert!(problem["properties"][field].is_object(), "Problem.{field}");
    }
    let field_error = &problem["properties"]["errors"]["items"];
    assert_eq!(schema_name(field_error), Some("FieldError"));
    assert!(doc["info"]["description"].as_str().unwrap().contains("/u/"));
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = app().await;
    let doc = document().await;
    let ops = operations(&doc);
    assert!(ops.len() >= 23, "{} operations", ops.len());
    for (method, path, operation) in &ops {
        let uri = concrete(path);
        // A routed path answers a method it does not take with 405; an unrouted one with 404.
        let (status, _, _) = app.fetch("TRACE", &uri, &[]).await;
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{path} is not routed"
        );
        let (status, _, _) = app.fetch(method, &uri, &[]).await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is not routed"
        );
        if operation.get("security") != Some(&serde_json::json!([{}])) {
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} without a key"
            );
        }
    }
}

#[tokio::test]
async fn every_operation_is_documented_concretely() {
    let doc = document().await;
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut ids = Vec::new();
    for (method, path, op) in operations(&doc) {
        let name = format!("{method} {path}");
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: operationId"));
        ids.push(id.to_owned());
        assert!(op["tags"][0].is_string(), "{name}: tag");
        // Every path parameter is declared.
        for param in path.split('/').filter_map(|s| s.strip_prefix('{')) {
            let param = param.trim_end_matches('}');
            let declared = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["in"] == "path" && p["name"] == param);
            assert!(declared, "{name}: path parameter {param}");
        }
        // A body is described by a schema. Actions (`…/cancel`, `…/resume`, `…/verify`,
        // `…/rotate`, `…/test`) take none, nor does making an SMTP credential (everything in
        // it is generated).
        let action = ["/cancel", "/resume", "/verify", "/rotate", "/test"]
            .iter()
            .any(|a| path.ends_with(a))
            || path == "/v1/smtp-credentials";
        if method == "PATCH" || (method == "POST" && path.starts_with("/v1") && !action) {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            let known = schema_name(schema).is_some_and(|s| schemas.contains_key(s));
            assert!(known, "{name}: request body schema");
        }
        let responses = op["responses"].as_object().unwrap();
        // A success with a schema, or one that has no body by nature.
        let success = responses
            .iter()
            .find(|(status, _)| status.starts_with('2') || status.as_str() == "302")
            .unwrap_or_else(|| panic!("{name}: no success response"));
        if !["204", "302"].contains(&success.0.as_str()) {
            let content = success.1["content"].as_object();
            let described = content
                .into_iter()
                .flatten()
                .all(|(_, media)| media["schema"].is_object());
            assert!(
                content.is_some_and(|c| !c.is_empty()) && described,
                "{name}: success body"
            );
        }
        // Every error is a problem document.
        for (status, response) in responses.iter().filter(|(s, _)| s.starts_with('4')) {
            let schema = &response["content"]["application/problem+json"]["schema"];
            assert_eq!(schema_name(schema), Some("Problem"), "{name} {status}");
        }
        let public = op["security"] == serde_json::json!([{}]);
        if path.starts_with("/v1") && !public {
            for status in ["401", "404"] {
                assert!(responses.contains_key(status), "{name}: {status}");
            }
        }
        if method == "POST" && path.starts_with("/v1") && !action || method == "PATCH" {
            for status in ["413", "422"] {
                assert!(responses.contains_key(status), "{name}: {status}");
            }
        }
    }
    let unique: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "operation ids are unique: {ids:?}");
}

#[tokio::test]
async fn roles_and_csv_are_in_the_document() {
    let doc = document().await;
    let op = |method: &str, path: &str| doc["paths"][path][method].clone();
    for (method, path) in [
        ("patch", "/v1/settings"),
        ("get", "/v1/webhooks"),
        ("post", "/v1/webhooks"),
        ("delete", "/v1/webhooks/{id}"),
        ("get", "/v1/webhooks/{id}/deliveries"),
        ("post", "/v1/domains"),
        ("post", "/v1/domains/{domain}/verify"),
        ("post", "/v1/domains/{domain}/rotate"),
        ("delete", "/v1/domains/{domain}"),
        ("delete", "/v1/suppressions/{address}"),
    ] {
        assert!(
            op(method, path)["responses"]["403"].is_object(),
            "{method} {path}: 403"
        );
    }
    assert!(op("post", "/v1/leads")["responses"]["409"].is_object());
    for path in ["/v1/reports/emails", "/v1/reports/batches"] {
        let content = &op("get", path)["responses"]["200"]["content"];
        assert!(content["text/csv"].is_object(), "{path}: CSV");
        assert!(
            schema_name(&content["application/json"]["schema"]).is_some(),
            "{path}"
        );
    }
}

//! `POST /mcp` over real HTTP.

mod support;

use mcp_guard_demo_upstream::{
    DEMO_CUSTOMER_PHONE, DEMO_EMAIL, DEMO_IBAN, SEARCH_CUSTOMERS_TEXT, SERVER_NAME, WEATHER_TEXT,
};
use serde_json::{json, Value};
use support::{post_json, Server};

async fn call(server: &Server, body: Value) -> Value {
    let reply = post_json(server.addr, "/mcp", &body.to_string()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    reply.json()
}

#[tokio::test]
async fn initialize_reports_server_and_tools_capability() {
    let server = Server::start().await;
    let reply = call(
        &server,
        json!({"jsonrpc":"2.0","id":1,"method":"initialize",
               "params":{"protocolVersion":"2025-06-18","capabilities":{},
                         "clientInfo":{"name":"t","version":"0"}}}),
    )
    .await;
    assert_eq!(reply["id"], 1);
    assert_eq!(reply["result"]["serverInfo"]["name"], SERVER_NAME);
    assert!(reply["result"]["capabilities"]["tools"].is_object());
    assert_eq!(reply["result"]["protocolVersion"], "2025-06-18");
}

#[tokio::test]
async fn tools_list_names_the_three_tools_with_schemas() {
    let server = Server::start().await;
    let reply = call(
        &server,
        json!({"jsonrpc":"2.0","id":"l","method":"tools/list"}),
    )
    .await;
    assert_eq!(reply["id"], "l");
    let tools = reply["result"]["tools"].as_array().expect("tools");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(
        names,
        ["search_customers", "get_weather", "delete_customer"]
    );
    for tool in tools {
        assert!(tool["description"].is_string());
        assert_eq!(tool["inputSchema"]["type"], "object");
    }
}

#[tokio::test]
async fn tools_call_answers_each_tool() {
    let server = Server::start().await;
    let text = |reply: &Value| {
        reply["result"]["content"][0]["text"]
            .as_str()
            .map(str::to_owned)
    };

    let search = call(
        &server,
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
               "params":{"name":"search_customers","arguments":{"query":"jane"}}}),
    )
    .await;
    let found = text(&search).expect("search text");
    assert_eq!(found, SEARCH_CUSTOMERS_TEXT);
    for pii in [DEMO_EMAIL, DEMO_CUSTOMER_PHONE, DEMO_IBAN] {
        assert!(found.contains(pii), "{pii}");
    }
    assert_eq!(search["result"]["content"][0]["type"], "text");
    assert_eq!(search["result"]["isError"], false);

    let weather = call(
        &server,
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
               "params":{"name":"get_weather","arguments":{"city":"Berlin"}}}),
    )
    .await;
    assert_eq!(text(&weather).as_deref(), Some(WEATHER_TEXT));

    let delete = call(
        &server,
        json!({"jsonrpc":"2.0","id":4,"method":"tools/call",
               "params":{"name":"delete_customer","arguments":{"customer_id":"c-1"}}}),
    )
    .await;
    assert_eq!(text(&delete).as_deref(), Some("deleted"));

    let unknown = call(
        &server,
        json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"rm_rf"}}),
    )
    .await;
    assert_eq!(unknown["error"]["code"], -32602);
    assert_eq!(unknown["id"], 5);
}

#[tokio::test]
async fn resources_and_prompts_are_listed() {
    let server = Server::start().await;
    let resources = call(
        &server,
        json!({"jsonrpc":"2.0","id":1,"method":"resources/list"}),
    )
    .await;
    assert!(!resources["result"]["resources"]
        .as_array()
        .expect("list")
        .is_empty());
    let prompts = call(
        &server,
        json!({"jsonrpc":"2.0","id":2,"method":"prompts/list"}),
    )
    .await;
    assert!(!prompts["result"]["prompts"]
        .as_array()
        .expect("list")
        .is_empty());
}

#[tokio::test]
async fn batch_answers_requests_in_order_and_skips_notifications() {
    let server = Server::start().await;
    let reply = call(
        &server,
        json!([
            {"jsonrpc":"2.0","id":1,"method":"tools/list"},
            {"jsonrpc":"2.0","method":"notifications/initialized"},
            {"jsonrpc":"2.0","id":2,"method":"no/such"},
            {"jsonrpc":"2.0","id":3,"method":"tools/call",
             "params":{"name":"get_weather","arguments":{"city":"Oslo"}}}
        ]),
    )
    .await;
    let replies = reply.as_array().expect("batch reply");
    let ids: Vec<&Value> = replies.iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, [&json!(1), &json!(2), &json!(3)]);
    assert!(replies[0]["result"]["tools"].is_array());
    assert_eq!(replies[1]["error"]["code"], -32601);
    assert_eq!(replies[2]["result"]["content"][0]["text"], WEATHER_TEXT);
}

#[tokio::test]
async fn errors_use_the_json_rpc_codes() {
    let server = Server::start().await;
    let unknown = call(
        &server,
        json!({"jsonrpc":"2.0","id":9,"method":"tools/explode"}),
    )
    .await;
    assert_eq!(unknown["error"]["code"], -32601);
    assert_eq!(unknown["id"], 9);

    let reply = post_json(server.addr, "/mcp", "{\"jsonrpc\":").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["error"]["code"], -32700);
    assert_eq!(reply.json()["id"], Value::Null);

    let empty = call(&server, json!([])).await;
    assert_eq!(empty["error"]["code"], -32600);
}

#[tokio::test]
async fn notifications_alone_get_202_and_no_body() {
    let server = Server::start().await;
    let reply = post_json(
        server.addr,
        "/mcp",
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!(reply.status, 202);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("x-demo-upstream"), Some("1"));
}

//! Code snippets and configuration: AWS credential files, `.env` files,
//! JSON credentials (STS, service config), PEM blocks, HTTP requests.

use mcp_guard_engine::pii::PiiType;

use crate::doc::DocBuilder;
use crate::negatives::uuid;
use crate::rng::Rng;
use crate::values;

pub(super) fn write(rng: &mut Rng, b: &mut DocBuilder) {
    b.text(rng.pick(&["Here is the config:\n\n", "```\n", "", "File contents:\n"]));
    for _ in 0..rng.range(1, 3) {
        match rng.below(9) {
            0 => aws_file(rng, b),
            1 => env_file(rng, b),
            2 => sts_json(rng, b),
            3 => pem(rng, b),
            4 => http(rng, b),
            5 => source(rng, b),
            6 => super::tricky::write(rng, b),
            7 => super::labelled::write(rng, b),
            _ => pem_json(rng, b),
        }
        b.text("\n");
    }
}

fn aws_file(rng: &mut Rng, b: &mut DocBuilder) {
    let (k, s) = (values::aws_key_id(rng), values::aws_secret(rng));
    let eq = if rng.chance(50) { " = " } else { "=" };
    b.text(format!(
        "[{}]\naws_access_key_id{eq}",
        rng.pick(&["default", "prod", "ci"])
    ))
    .pii(PiiType::AwsKey, &k)
    .text(format!("\naws_secret_access_key{eq}"))
    .pii(PiiType::AwsSecret, &s)
    .text(format!("\nregion{eq}us-east-1\n"));
}

fn env_file(rng: &mut Rng, b: &mut DocBuilder) {
    let (k, s) = (values::aws_key_id(rng), values::aws_secret(rng));
    b.text("# .env\nDATABASE_URL=postgres://app@db:5432/app\nAWS_ACCESS_KEY_ID=")
        .pii(PiiType::AwsKey, &k)
        .text("\nAWS_SECRET_ACCESS_KEY=")
        .pii(PiiType::AwsSecret, &s)
        .text("\n");
    for _ in 0..rng.range(1, 3) {
        let t = values::token(rng);
        let name = match &t[..3] {
            "ghp" | "gho" | "ghs" | "ghu" | "git" => "GITHUB_TOKEN",
            "xox" => "SLACK_BOT_TOKEN",
            "AIz" => "GOOGLE_API_KEY",
            _ => "STRIPE_SECRET_KEY",
        };
        let q = if rng.chance(30) { "\"" } else { "" };
        b.text(format!("{name}={q}"))
            .pii(PiiType::Token, &t)
            .text(format!("{q}\n"));
    }
    b.text(format!("SESSION_ID={}\nPORT=8080\n", uuid(rng)));
}

fn sts_json(rng: &mut Rng, b: &mut DocBuilder) {
    let (k, s) = (values::aws_key_id(rng), values::aws_secret(rng));
    b.text("{\n  \"Credentials\": {\n    \"AccessKeyId\": \"")
        .pii(PiiType::AwsKey, &k)
        .text("\",\n    \"SecretAccessKey\": \"")
        .pii(PiiType::AwsSecret, &s)
        .text(format!(
            "\",\n    \"SessionToken\": \"{}\",\n    \"Expiration\": \"2024-06-01T12:00:00Z\"\n  }}\n}}",
            rng.b64(120)
        ));
}

fn pem(rng: &mut Rng, b: &mut DocBuilder) {
    let key = values::pem_key(rng, "\n");
    b.text("$ cat id_rsa\n")
        .pii(PiiType::PrivateKey, &key)
        .text("\n");
}

fn pem_json(rng: &mut Rng, b: &mut DocBuilder) {
    let key = values::pem_key(rng, "\\n");
    b.text(format!(
        "{{\"type\": \"service_account\", \"private_key_id\": \"{}\", \"private_key\": \"",
        rng.hex(40)
    ))
    .pii(PiiType::PrivateKey, &key)
    .text("\\n\", \"client_email\": \"");
    let e = values::email(rng);
    b.pii(PiiType::Email, &e).text("\"}");
}

fn http(rng: &mut Rng, b: &mut DocBuilder) {
    let cred = values::bearer_credential(rng);
    let scheme = *rng.pick(&["Bearer", "Bearer", "bearer"]);
    b.text(format!(
        "curl -s https://api.example.com/v1/items \\\n  -H \"Authorization: {scheme} "
    ))
    .pii(PiiType::Token, &cred)
    .text("\" \\\n  -H 'Content-Type: application/json'\n");
}

fn source(rng: &mut Rng, b: &mut DocBuilder) {
    let t = values::token(rng);
    let jwt = values::jwt(rng);
    b.text("const client = new Client({\n  apiKey: '")
        .pii(PiiType::Token, &t)
        .text("',\n  timeout: 30000,\n});\nconst session = \"")
        .pii(PiiType::Token, &jwt)
        .text(format!("\";\n// build {}\n", rng.hex(7)));
}

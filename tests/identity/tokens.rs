//! ES256, the issuer-tenant-role matrix, rotated key files.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_tokens_verify_against_their_issuers_jwks() {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::EncodePrivateKey;

    let ec_key = || {
        let secret = p256::SecretKey::random(&mut rsa::rand_core::OsRng);
        let point = secret.public_key().to_encoded_point(false);
        let jwk = json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "ec-1",
                         "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                         "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())});
        let der = secret.to_pkcs8_der().unwrap();
        (EncodingKey::from_ec_der(der.as_bytes()), jwk)
    };
    let (signing, jwk) = ec_key();
    let (stranger, _) = ec_key();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ec.json");
    std::fs::write(&path, json!({"keys": [jwk]}).to_string()).unwrap();
    let server = TestServer::start_with(&format!(
        "[[auth.jwt]]\nissuer = \"https://ec.test\"\njwks_file = {:?}\naudience = [\"ward\"]\nalgorithms = [\"ES256\"]\n",
        path.display().to_string()
    ))
    .await;
    server.tenant("acme").await;
    let sign = |key: &EncodingKey, alg: Algorithm| {
        let mut header = Header::new(alg);
        header.kid = Some(String::from("ec-1"));
        jsonwebtoken::encode(
            &header,
            &claims("https://ec.test", json!({"tenant": "acme"})),
            key,
        )
        .unwrap()
    };
    assert_eq!(
        status(&server, &sign(&signing, Algorithm::ES256)).await.0,
        200
    );
    assert_eq!(
        status(&server, &sign(&stranger, Algorithm::ES256)).await.0,
        401
    );
    // HS256 "signed" with the public key's JSON: refused by algorithm.
    let confused = EncodingKey::from_secret(jwk.to_string().as_bytes());
    assert_eq!(
        status(&server, &sign(&confused, Algorithm::HS256)).await.0,
        401
    );
}

/// Every issuer × tenant × role of the bounded server, for `GET /v1/tenant`
/// without a tenant header: the expected answer of each cell written out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_tenant_role_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let (server, consumer, enterprise, ops) = bounded_server(dir.path()).await;
    server.tenant("acme").await;
    server.tenant("globex").await;
    let issuers = [
        ("consumer", &consumer, "https://consumer.test"),
        ("enterprise", &enterprise, "https://enterprise.test"),
        ("ops", &ops, "https://ops.test"),
    ];
    // (issuer, tenant, role) → (status, code); "" for a 200.
    let expected: &[(&str, &str, &str, u16, &str)] = &[
        ("consumer", "acme", "admin", 403, "tenant_not_allowed"),
        ("consumer", "acme", "authorize", 403, "tenant_not_allowed"),
        ("consumer", "acme", "viewer", 403, "forbidden"),
        ("consumer", "acme", "ward:operator", 403, "forbidden"),
        ("consumer", "globex", "admin", 403, "tenant_not_allowed"),
        ("consumer", "globex", "authorize", 403, "tenant_not_allowed"),
        ("consumer", "globex", "viewer", 403, "forbidden"),
        ("consumer", "globex", "ward:operator", 403, "forbidden"),
        ("consumer", "u-bob", "admin", 200, ""),
        ("consumer", "u-bob", "authorize", 200, ""),
        ("consumer", "u-carol", "viewer", 403, "forbidden"),
        ("consumer", "u-dave", "ward:operator", 403, "forbidden"),
        ("enterprise", "acme", "admin", 200, ""),
        ("enterprise", "acme", "authorize", 200, ""),
        ("enterprise", "acme", "viewer", 403, "forbidden"),
        ("enterprise", "acme", "ward:operator", 403, "forbidden"),
        ("enterprise", "globex", "admin", 403, "tenant_not_allowed"),
        (
            "enterprise",
            "globex",
            "authorize",
            403,
            "tenant_not_allowed",
        ),
        ("enterprise", "globex", "viewer", 403, "forbidden"),
        ("enterprise", "globex", "ward:operator", 403, "forbidden"),
        ("enterprise", "u-erin", "admin", 403, "tenant_not_allowed"),
        (
            "enterprise",
            "u-erin",
            "authorize",
            403,
            "tenant_not_allowed",
        ),
        ("enterprise", "u-erin", "viewer", 403, "forbidden"),
        ("enterprise", "u-erin", "ward:operator", 403, "forbidden"),
        ("ops", "acme", "admin", 200, ""),
        ("ops", "acme", "authorize", 200, ""),
        ("ops", "acme", "viewer", 403, "forbidden"),
        ("ops", "acme", "ward:operator", 400, "tenant_required"),
        ("ops", "globex", "admin", 200, ""),
        ("ops", "globex", "authorize", 200, ""),
        ("ops", "globex", "viewer", 403, "forbidden"),
        ("ops", "globex", "ward:operator", 400, "tenant_required"),
        ("ops", "u-frank", "admin", 403, "forbidden"),
        ("ops", "u-frank", "authorize", 403, "forbidden"),
        ("ops", "u-frank", "viewer", 403, "forbidden"),
        ("ops", "u-frank", "ward:operator", 400, "tenant_required"),
    ];
    for (issuer, tenant, role, status_code, code) in expected {
        let (_, key, iss) = issuers.iter().find(|(name, _, _)| name == issuer).unwrap();
        let token = key.sign(claims(iss, json!({"tenant": tenant, "roles": [role]})));
        let reply = server.get("/v1/tenant", &token).await;
        let cell = format!("{issuer} × {tenant} × {role}");
        assert_eq!(reply.status, *status_code, "{cell}: {}", reply.body);
        if *status_code == 200 {
            assert_eq!(reply.body["slug"], *tenant, "{cell}");
        } else {
            assert_eq!(reply.code(), *code, "{cell}");
        }
    }
    // Only the consumer realm's admin and authorize tokens provisioned.
    let tenants = server.get("/v1/tenants", OPERATOR).await;
    let mut slugs: Vec<&str> = tenants
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    slugs.sort_unstable();
    assert_eq!(slugs, vec!["acme", "globex", "u-bob"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_file_is_read_again_on_an_unknown_kid() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (Key::new("2025"), Key::new("2026"));
    let path = dir.path().join("keys.json");
    std::fs::write(&path, json!({"keys": [old.jwk()]}).to_string()).unwrap();
    let server = TestServer::start_with(&format!(
        "[[auth.jwt]]\nissuer = \"https://file.test\"\njwks_file = {:?}\naudience = [\"ward\"]\nalgorithms = [\"HS256\"]\njwks_min_interval_secs = 0\n",
        path.display().to_string()
    ))
    .await;
    server.tenant("acme").await;
    let token = |key: &Key| key.sign(claims("https://file.test", json!({"tenant": "acme"})));
    assert_eq!(status(&server, &token(&old)).await.0, 200);
    assert_eq!(
        status(&server, &token(&new)).await.0,
        401,
        "not published yet"
    );
    std::fs::write(&path, json!({"keys": [new.jwk()]}).to_string()).unwrap();
    assert_eq!(status(&server, &token(&new)).await.0, 200);
    assert_eq!(status(&server, &token(&old)).await.0, 401, "retired");
}

//! `Bus::connect` with each kind of credential and with TLS, against
//! private nats-servers configured for them (never the shared one).

use std::{path::Path, process::Command};

use secrecy::SecretString;
use waiter_harness::nats_server::PrivateNats;
use waiter_nats::{
    config::{NatsAuth, NatsTls},
    Bus, BusConfig,
};

fn config(url: String, auth: NatsAuth) -> BusConfig {
    let mut config = BusConfig::local("creds", 1);
    config.url = url;
    config.auth = auth;
    config
}

async fn round_trip(bus: &Bus) {
    let mut inbox = bus.client().subscribe("creds.ping").await.unwrap();
    bus.client()
        .publish("creds.ping", "hi".into())
        .await
        .unwrap();
    bus.client().flush().await.unwrap();
    use futures::StreamExt;
    let message = tokio::time::timeout(std::time::Duration::from_secs(5), inbox.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&message.payload[..], b"hi");
}

#[tokio::test]
async fn a_token_connects_and_a_wrong_one_is_refused_readably() {
    let nats = PrivateNats::with_config(
        "listen: 127.0.0.1:{port}\nauthorization { token: \"s3cret-token\" }\n",
        &[],
    )
    .await;
    let token = |t: &str| NatsAuth::Token(SecretString::from(t.to_string()));
    let bus = Bus::connect(&config(nats.url(), token("s3cret-token")), "t")
        .await
        .unwrap();
    round_trip(&bus).await;
    let err = match Bus::connect(&config(nats.url(), token("guess")), "t").await {
        Ok(_) => panic!("a wrong token connected"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("authorization") && !err.contains("guess"),
        "{err}"
    );
}

#[tokio::test]
async fn an_nkey_seed_connects() {
    let user = nkeys::KeyPair::new_user();
    let nats = PrivateNats::with_config(
        &format!(
            "listen: 127.0.0.1:{{port}}\nauthorization {{ users: [ {{ nkey: {} }} ] }}\n",
            user.public_key()
        ),
        &[],
    )
    .await;
    let seed = SecretString::from(user.seed().unwrap());
    let bus = Bus::connect(&config(nats.url(), NatsAuth::NKey(seed)), "nkey")
        .await
        .unwrap();
    round_trip(&bus).await;
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        status.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

#[tokio::test]
async fn tls_with_our_own_ca_connects_and_without_it_does_not() {
    let dir = std::env::temp_dir().join(format!("waiter-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=waiter-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
    let nats = PrivateNats::with_config(
        &format!(
            "listen: 127.0.0.1:{{port}}\ntls {{ cert_file: \"{}\", key_file: \"{}\" }}\n",
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        ),
        &[],
    )
    .await;
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let mut trusted = config(url.clone(), NatsAuth::None);
    trusted.tls = NatsTls {
        required: true,
        ca_file: Some(dir.join("ca.pem")),
        client_cert: None,
    };
    let bus = Bus::connect(&trusted, "tls").await.unwrap();
    round_trip(&bus).await;

    let mut untrusted = config(url, NatsAuth::None);
    untrusted.tls.required = true;
    assert!(
        Bus::connect(&untrusted, "tls").await.is_err(),
        "a certificate from an unknown CA is refused"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! Token verification and the certificate cache, below the HTTP edge: each
//! forgery is refused for the reason we expect, not by accident.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use auth_exchange::certs::CachePolicy;
use auth_exchange::verify::{KeySource, key_from_certificate};
use auth_exchange::{Rejection, StaticKeys, Verifier, VerifyError};
use common::{
    CertServer, PROJECT, SigningKey, UID, claims, claims_with, fast_policy, hs256_with_certificate,
    now, tampered, unsigned_token,
};
use serde_json::json;

const SKEW: Duration = Duration::from_mins(1);

fn verifier() -> Verifier<StaticKeys> {
    let key = SigningKey::shared();
    let keys = StaticKeys::from_certificates([(key.kid.as_str(), key.cert_pem.as_str())])
        .expect("the certificate PEM gives an RSA key");
    Verifier::new(PROJECT, SKEW, keys)
}

async fn rejection(token: &str) -> Rejection {
    match verifier().verify(token).await {
        Err(VerifyError::Rejected(reason)) => reason,
        Err(other) => panic!("expected a rejection, got {other}"),
        Ok(verified) => panic!("expected a rejection, got {verified:?}"),
    }
}

#[tokio::test]
async fn a_valid_token_verifies_and_yields_its_claims() {
    let key = SigningKey::shared();
    let verified = verifier()
        .verify(&key.sign(&claims()))
        .await
        .expect("valid token");
    assert_eq!(verified.uid.as_str(), UID);
    assert_eq!(verified.claims.email.as_deref(), Some(common::EMAIL));
    assert_eq!(verified.claims.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(
        verified.claims.firebase.sign_in_provider.as_deref(),
        Some("google.com")
    );
}

#[tokio::test]
async fn a_certificate_pem_yields_the_rsa_public_key_and_an_ec_certificate_is_refused() {
    let key = SigningKey::shared();
    assert!(key_from_certificate(&key.cert_pem).is_ok());
    let ec = rcgen::KeyPair::generate().expect("P-256 key");
    let ec_cert = rcgen::CertificateParams::new(vec!["ec.test".to_owned()])
        .expect("params")
        .self_signed(&ec)
        .expect("certificate");
    assert!(key_from_certificate(&ec_cert.pem()).is_err());
}

#[tokio::test]
async fn alg_none_is_refused_as_an_algorithm() {
    let key = SigningKey::shared();
    assert_eq!(
        rejection(&unsigned_token(&key.kid, &claims())).await,
        Rejection::Algorithm
    );
}

#[tokio::test]
async fn hs256_keyed_with_the_public_certificate_is_refused() {
    let key = SigningKey::shared();
    assert_eq!(
        rejection(&hs256_with_certificate(key, &claims())).await,
        Rejection::Algorithm
    );
}

#[tokio::test]
async fn an_unknown_kid_is_refused() {
    let key = SigningKey::shared();
    assert_eq!(
        rejection(&key.sign_with_kid(&claims(), "not-a-google-kid")).await,
        Rejection::UnknownKid
    );
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_a_trusted_kid_is_refused() {
    let key = SigningKey::shared();
    let impostor = SigningKey::generate(&key.kid);
    assert_eq!(
        rejection(&impostor.sign(&claims())).await,
        Rejection::Signature
    );
}

#[tokio::test]
async fn each_claim_check_refuses_for_its_own_reason() {
    let key = SigningKey::shared();
    let now = now();
    let cases = [
        (json!({ "aud": "another-project" }), Rejection::Audience),
        (
            json!({ "iss": "https://securetoken.google.com/another-project" }),
            Rejection::Issuer,
        ),
        (
            json!({ "iss": "https://accounts.google.com" }),
            Rejection::Issuer,
        ),
        (json!({ "exp": now - 3600 }), Rejection::Expired),
        (json!({ "iat": now + 3600 }), Rejection::IssuedInFuture),
        (
            json!({ "auth_time": now + 3600 }),
            Rejection::AuthTimeInFuture,
        ),
        (json!({ "sub": "" }), Rejection::Subject),
        (json!({ "sub": "u".repeat(129) }), Rejection::Subject),
        (json!({ "sub": "   " }), Rejection::Subject),
    ];
    for (changes, expected) in cases {
        let token = key.sign(&claims_with(&changes));
        assert_eq!(rejection(&token).await, expected, "{changes}");
    }
}

#[tokio::test]
async fn missing_required_claims_are_refused() {
    let key = SigningKey::shared();
    for claim in ["exp", "iat", "auth_time", "sub", "aud", "iss"] {
        let mut claims = claims();
        claims
            .as_object_mut()
            .expect("object")
            .remove(claim)
            .expect("present");
        let reason = rejection(&key.sign(&claims)).await;
        assert!(
            matches!(reason, Rejection::MissingClaim | Rejection::Malformed),
            "{claim}: {reason}"
        );
    }
}

#[tokio::test]
async fn small_clock_skew_is_tolerated() {
    let key = SigningKey::shared();
    let now = now();
    let token = key.sign(&claims_with(&json!({
        "iat": now + 30,
        "auth_time": now + 30,
        "exp": now - 30,
    })));
    assert!(verifier().verify(&token).await.is_ok());
}

#[tokio::test]
async fn a_sub_of_exactly_128_characters_is_accepted() {
    let key = SigningKey::shared();
    let token = key.sign(&claims_with(&json!({ "sub": "u".repeat(128) })));
    assert!(verifier().verify(&token).await.is_ok());
}

#[tokio::test]
async fn a_tampered_payload_fails_the_signature() {
    let key = SigningKey::shared();
    assert_eq!(
        rejection(&tampered(&key.sign(&claims()))).await,
        Rejection::Signature
    );
}

#[tokio::test]
async fn malformed_tokens_are_refused_before_any_key_lookup() {
    for token in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "not base64!.x.y",
        "eyJhbGciOiJSUzI1NiJ9..sig",
        "e30.e30.c2ln",
    ] {
        let reason = rejection(token).await;
        assert!(
            matches!(reason, Rejection::Malformed | Rejection::Algorithm),
            "{token:?}: {reason}"
        );
    }
}

#[tokio::test]
async fn a_token_over_8_kb_is_refused_before_parsing() {
    let key = SigningKey::shared();
    let token = key.sign(&claims_with(&json!({ "padding": "x".repeat(9000) })));
    assert!(token.len() > 8 * 1024);
    assert_eq!(rejection(&token).await, Rejection::TooLarge);
}

#[tokio::test]
async fn certificates_are_cached_for_max_age_then_refetched() {
    let key = SigningKey::shared();
    let server = CertServer::start(&[key], Some(1)).await;
    let verifier = Verifier::new(PROJECT, SKEW, server.key_source(fast_policy()));
    let token = key.sign(&claims());
    for _ in 0..5 {
        verifier.verify(&token).await.expect("valid");
    }
    assert_eq!(server.hits(), 1, "five verifications, one fetch");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    verifier.verify(&token).await.expect("valid");
    assert_eq!(server.hits(), 2, "max-age elapsed, so one more fetch");
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let key = SigningKey::shared();
    let server = CertServer::start(&[key], Some(3600)).await;
    let verifier = Verifier::new(PROJECT, SKEW, server.key_source(fast_policy()));
    verifier.verify(&key.sign(&claims())).await.expect("valid");
    for n in 0..20 {
        let forged = key.sign_with_kid(&claims(), &format!("forged-{n}"));
        let result = verifier.verify(&forged).await;
        assert!(matches!(
            result,
            Err(VerifyError::Rejected(Rejection::UnknownKid))
        ));
    }
    assert_eq!(
        server.hits(),
        1,
        "forged kids within a minute cause no fetch"
    );
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_after_the_unknown_kid_interval() {
    let key = SigningKey::shared();
    let server = CertServer::start(&[key], Some(3600)).await;
    let policy = CachePolicy {
        unknown_kid_interval: Duration::from_secs(1),
        ..fast_policy()
    };
    // Generated first: RSA key generation can outlast the interval.
    let rotated = SigningKey::generate("test-kid-2");
    let verifier = Verifier::new(PROJECT, SKEW, server.key_source(policy));
    verifier.verify(&key.sign(&claims())).await.expect("valid");

    server.state.add(&rotated);
    let token = rotated.sign(&claims());
    assert!(
        matches!(
            verifier.verify(&token).await,
            Err(VerifyError::Rejected(Rejection::UnknownKid))
        ),
        "too soon to refetch"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    verifier
        .verify(&token)
        .await
        .expect("the new kid is fetched once the interval has passed");
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn stale_certificates_keep_serving_while_the_endpoint_fails() {
    let key = SigningKey::shared();
    let server = CertServer::start(&[key], Some(1)).await;
    let verifier = Verifier::new(PROJECT, SKEW, server.key_source(fast_policy()));
    let token = key.sign(&claims());
    verifier.verify(&token).await.expect("valid");
    server.state.failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    verifier
        .verify(&token)
        .await
        .expect("stale keys serve during an outage");
    verifier
        .verify(&token)
        .await
        .expect("and again, without hammering the endpoint");
    assert_eq!(server.hits(), 2, "one failed refresh, then backing off");
}

#[tokio::test]
async fn without_certificates_verification_is_unavailable_not_a_bad_token() {
    let key = SigningKey::shared();
    let server = CertServer::start(&[key], Some(60)).await;
    server.state.failing.store(true, Ordering::SeqCst);
    let verifier = Verifier::new(PROJECT, SKEW, server.key_source(fast_policy()));
    let result = verifier.verify(&key.sign(&claims())).await;
    assert!(
        matches!(result, Err(VerifyError::KeysUnavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn concurrent_cold_lookups_share_one_fetch() {
    let key = SigningKey::shared();
    let server = CertServer::start(&[key], Some(3600)).await;
    let keys = server.key_source(fast_policy());
    let kid = key.kid.as_str();
    let (a, b, c, d) = tokio::join!(keys.key(kid), keys.key(kid), keys.key(kid), keys.key(kid));
    assert!(a.is_ok() && b.is_ok() && c.is_ok() && d.is_ok());
    assert_eq!(server.hits(), 1);
}

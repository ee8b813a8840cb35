//! Verification of a Firebase ID token with a warm key cache: the per-request
//! cost of the sign-in path before STS. Target: at most 50 µs.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use auth_exchange::{StaticKeys, Verifier};
use common::{CertServer, PROJECT, SigningKey, claims, fast_policy};
use criterion::{Criterion, criterion_group, criterion_main};

fn verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let key = SigningKey::generate("bench-kid");
    let token = key.sign(&claims());

    // The production key source, its cache warmed by one fetch from a local
    // certificate server.
    let server = runtime.block_on(CertServer::start(&[&key], Some(3600)));
    let http_keys = server.key_source(fast_policy());
    let warm = Verifier::new(PROJECT, Duration::from_mins(1), http_keys);
    runtime
        .block_on(warm.verify(&token))
        .expect("the token verifies");

    let fixed = Verifier::new(
        PROJECT,
        Duration::from_mins(1),
        StaticKeys::from_certificates([(key.kid.as_str(), key.cert_pem.as_str())])
            .expect("certificate"),
    );

    let mut group = c.benchmark_group("verify");
    group.bench_function("warm_http_cache", |b| {
        b.iter(|| runtime.block_on(warm.verify(black_box(&token))));
    });
    group.bench_function("static_keys", |b| {
        b.iter(|| runtime.block_on(fixed.verify(black_box(&token))));
    });
    group.finish();
    assert_eq!(server.hits(), 1, "the benchmark ran on the warm cache");
}

criterion_group!(benches, verify);
criterion_main!(benches);

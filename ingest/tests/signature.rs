//! Our verifier against the simulator's independent signer, over randomized
//! parameter sets of the kind WhatsApp produces.

use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};

const PIECES: &[&str] = &[
    "مرحبا",
    "شاورما ٢",
    "🌯",
    "👋🏽",
    "a+b",
    "100%",
    "%20",
    "&",
    "=",
    "?",
    "",
    " ",
    "x",
    "Ahmed",
    "ليمون بالنعناع",
    "\n",
    "ä",
    "+966500000000",
    "whatsapp:+14155238886",
];

fn random_value(rng: &mut StdRng) -> String {
    let n = rng.gen_range(0..6);
    (0..n).map(|_| *PIECES.choose(rng).unwrap()).collect()
}

fn random_params(rng: &mut StdRng) -> Vec<(String, String)> {
    let names = [
        "Body",
        "From",
        "To",
        "MessageSid",
        "AccountSid",
        "ProfileName",
        "ButtonPayload",
        "Digits",
        "Referral",
    ];
    let mut params: Vec<(String, String)> = (0..rng.gen_range(1..12))
        .map(|_| (names.choose(rng).unwrap().to_string(), random_value(rng)))
        .collect();
    // Repeated names, always.
    params.push(("MediaUrl".into(), random_value(rng)));
    params.push(("MediaUrl".into(), random_value(rng)));
    params.shuffle(rng);
    params
}

#[test]
fn signatures_from_an_independent_signer_verify_and_tampering_does_not() {
    let mut rng = StdRng::seed_from_u64(20261125);
    for round in 0..500 {
        let token = format!("token-{}", rng.gen::<u64>());
        let url = [
            "https://waiter.example.com/whatsapp/webhook",
            "https://w.example/whatsapp/webhook?tenant=a&x=1%202",
        ][round % 2];
        let params = random_params(&mut rng);
        let signature = twilio_sim::signature::sign(&token, url, &params);
        assert!(
            ingest::signature::is_valid(&token, url, &params, Some(&signature)),
            "round {round}: {params:?}"
        );
        assert_eq!(ingest::signature::compute(&token, url, &params), signature);
        // Any change to a value is caught.
        let mut tampered = params.clone();
        let i = rng.gen_range(0..tampered.len());
        tampered[i].1.push('!');
        assert!(!ingest::signature::is_valid(
            &token,
            url,
            &tampered,
            Some(&signature)
        ));
        // So is another token.
        assert!(!ingest::signature::is_valid(
            "other",
            url,
            &params,
            Some(&signature)
        ));
    }
}

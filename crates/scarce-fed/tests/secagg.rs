//! Secure aggregation: the unmasked sum equals the plain sum within the stated quantisation
//! bound, with and without dropouts; a masked input is uniform whatever the input; wrong,
//! replayed or misdirected shares are refused.

use std::collections::BTreeMap;

use scarce_fed::secagg::{
    MaskedInput, PublicKeys, SealedShares, SecAggClient, SecAggConfig, SecAggServer, SecretKind,
    SecureSum, Unmasking,
};
use scarce_fed::Error;

fn config(clients: usize, threshold: usize, len: usize) -> SecAggConfig {
    SecAggConfig {
        session: 42,
        clients,
        threshold,
        len,
        range: 1.0,
        bits: 24,
    }
}

/// Client i's vector: values spread over [−1, 1].
fn input(i: usize, len: usize) -> Vec<f64> {
    (0..len)
        .map(|j| (((i * 7919 + j * 104_729) % 20_001) as f64 - 10_000.0) / 10_000.0)
        .collect()
}

/// Rounds 1–3 for every client; `send_input` says who sends a masked input.
fn setup(
    cfg: &SecAggConfig,
    send_input: impl Fn(u32) -> bool,
) -> (SecAggServer, Vec<SecAggClient>, Vec<MaskedInput>) {
    let mut server = SecAggServer::new(cfg).unwrap();
    let (mut clients, keys): (Vec<SecAggClient>, Vec<PublicKeys>) = (0..cfg.clients as u32)
        .map(|i| SecAggClient::new(i, cfg).unwrap())
        .unzip();
    let keys = server.collect_keys(keys).unwrap();
    let sealed: Vec<Vec<SealedShares>> = clients
        .iter_mut()
        .map(|c| c.share_keys(&keys).unwrap())
        .collect();
    let mut routed = server.route(sealed).unwrap();
    let masked = clients
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| send_input(*i as u32))
        .map(|(i, c)| {
            c.masked_input(&routed.remove(&(i as u32)).unwrap(), &input(i, cfg.len))
                .unwrap()
        })
        .collect();
    (server, clients, masked)
}

fn run(cfg: &SecAggConfig, send_input: impl Fn(u32) -> bool) -> SecureSum {
    let (mut server, clients, masked) = setup(cfg, send_input);
    let survivors = server.collect_masked(masked).unwrap();
    let responses: Vec<Unmasking> = survivors
        .iter()
        .map(|&s| clients[s as usize].unmask(&survivors).unwrap())
        .collect();
    server.unmask(responses).unwrap()
}

fn worst_error(out: &SecureSum, len: usize) -> f64 {
    let mut worst = 0f64;
    for j in 0..len {
        let plain: f64 = out.summed.iter().map(|&i| input(i as usize, len)[j]).sum();
        worst = worst.max((out.sum[j] - plain).abs());
    }
    worst
}

#[test]
fn unmasked_sum_is_the_plain_sum_within_the_bound() {
    let cfg = config(7, 4, 1000);
    let out = run(&cfg, |_| true);
    assert_eq!(out.summed, (0..7).collect::<Vec<u32>>());
    assert!(out.dropped.is_empty() && out.rejected.is_empty(), "{out:?}");
    let worst = worst_error(&out, cfg.len);
    println!(
        "7 clients, 24 bits: largest error {worst:.3e}, bound 7·step/2 = {:.3e}",
        out.error_bound
    );
    assert!(worst <= out.error_bound && out.error_bound < 1e-6);
}

#[test]
fn sum_survives_up_to_n_minus_t_dropouts() {
    let cfg = config(7, 4, 300);
    // Three clients (n − t) share keys, then drop before sending their input.
    let out = run(&cfg, |i| i % 2 == 0);
    assert_eq!(out.summed, vec![0, 2, 4, 6]);
    assert_eq!(out.dropped, vec![1, 3, 5]);
    let worst = worst_error(&out, cfg.len);
    println!(
        "3 of 7 dropped: largest error {worst:.3e}, bound {:.3e}",
        out.error_bound
    );
    assert!(worst <= out.error_bound);

    // Four dropouts leave three inputs, under the threshold: refused, not a wrong sum.
    let (mut server, _, masked) = setup(&cfg, |i| i < 3);
    match server.collect_masked(masked) {
        Err(Error::Config { name, .. }) => assert_eq!(name, "threshold"),
        other => panic!("{other:?}"),
    }
}

/// χ² of the top four bits of `words` against the uniform distribution (15 degrees of
/// freedom).
fn chi_square_top_bits(words: &[u64]) -> f64 {
    let mut bins = [0f64; 16];
    for w in words {
        bins[(w >> 60) as usize] += 1.0;
    }
    let e = words.len() as f64 / 16.0;
    bins.iter().map(|o| (o - e) * (o - e) / e).sum()
}

/// The masked input of client 0 in a fresh session where it sends `x`.
fn masked_of(x: &[f64]) -> Vec<u64> {
    let cfg = config(3, 2, x.len());
    let mut server = SecAggServer::new(&cfg).unwrap();
    let (mut clients, keys): (Vec<SecAggClient>, Vec<PublicKeys>) =
        (0..3).map(|i| SecAggClient::new(i, &cfg).unwrap()).unzip();
    let keys = server.collect_keys(keys).unwrap();
    let sealed = clients
        .iter_mut()
        .map(|c| c.share_keys(&keys).unwrap())
        .collect();
    let mut routed = server.route(sealed).unwrap();
    clients[0]
        .masked_input(&routed.remove(&0).unwrap(), x)
        .unwrap()
        .values
}

/// The statement tested: a client's masked vector is uniform on Z_{2⁶⁴} and carries no
/// trace of its input. For the two extreme inputs (all −range, all +range), the top four
/// bits of 32 768 masked words pass a χ² test of uniformity, and the two samples pass a χ²
/// test of coming from one distribution, each at p = 10⁻⁶ (critical value 56.49 for 15
/// degrees of freedom). The unmasked quantised input fails the same
/// test, so the test can see dependence when there is some.
#[test]
fn a_masked_input_is_uniform_whatever_the_input() {
    const CRITICAL_15: f64 = 56.49;
    let len = 32_768;
    let low = masked_of(&vec![-1.0; len]);
    let high = masked_of(&vec![1.0; len]);
    let (c_low, c_high) = (chi_square_top_bits(&low), chi_square_top_bits(&high));
    // Two-sample homogeneity over the same 16 bins.
    let bins = |w: &[u64]| {
        let mut b = [0f64; 16];
        for x in w {
            b[(x >> 60) as usize] += 1.0;
        }
        b
    };
    let (a, b) = (bins(&low), bins(&high));
    let two_sample: f64 = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y) * (x - y) / (x + y))
        .sum();
    println!("χ² uniform: {c_low:.1} (all −1), {c_high:.1} (all +1); two-sample {two_sample:.1}");
    assert!(c_low < CRITICAL_15 && c_high < CRITICAL_15 && two_sample < CRITICAL_15);
    // The same test on the unmasked quantised inputs rejects uniformity: all −1 quantises
    // to 0, all +1 to 2²⁴ − 1, both in the lowest bin of the top four bits.
    let cfg = config(3, 2, len);
    for v in [-1.0, 1.0] {
        let q = ((v + cfg.range) / cfg.step()).round() as u64;
        let c_plain = chi_square_top_bits(&vec![q; len]);
        assert!(c_plain > 100.0 * CRITICAL_15, "{c_plain}");
    }
    // Masks are fresh each session: the same input masks differently.
    assert_ne!(masked_of(&vec![0.5; 64]), masked_of(&vec![0.5; 64]));
}

#[test]
fn altered_or_replayed_sealed_shares_are_refused() {
    let cfg = config(4, 3, 8);
    let new_session = |session| {
        let cfg = SecAggConfig {
            session,
            ..cfg.clone()
        };
        let mut server = SecAggServer::new(&cfg).unwrap();
        let (mut clients, keys): (Vec<SecAggClient>, Vec<PublicKeys>) =
            (0..4).map(|i| SecAggClient::new(i, &cfg).unwrap()).unzip();
        let keys = server.collect_keys(keys).unwrap();
        let sealed = clients
            .iter_mut()
            .map(|c| c.share_keys(&keys).unwrap())
            .collect();
        let routed: BTreeMap<u32, Vec<SealedShares>> = server.route(sealed).unwrap();
        (clients, routed)
    };
    let (_, old) = new_session(1);
    let (mut clients, routed) = new_session(2);
    let x = vec![0.0; 8];
    let expect_refusal = |c: &mut SecAggClient, shares: &[SealedShares], from: usize, what| match c
        .masked_input(shares, &x)
    {
        Err(Error::Client { client, reason }) => {
            assert_eq!(client, from, "{reason}");
            assert!(reason.contains(what), "{reason}");
        }
        other => panic!("{other:?}"),
    };
    // One flipped bit.
    let mut altered = routed[&0].clone();
    altered[1].ciphertext[5] ^= 1;
    let from = altered[1].from as usize;
    expect_refusal(&mut clients[0], &altered, from, "authenticate");
    // The same sender's shares from the previous session, replayed.
    let mut replayed = routed[&0].clone();
    replayed[0] = old[&0][0].clone();
    let from = replayed[0].from as usize;
    expect_refusal(&mut clients[0], &replayed, from, "authenticate");
    // Delivered twice.
    let mut twice = routed[&0].clone();
    twice.push(twice[0].clone());
    let from = twice[0].from as usize;
    expect_refusal(&mut clients[0], &twice, from, "second");
    // Addressed to another client.
    let mut misdirected = routed[&0].clone();
    misdirected[0] = routed[&1][1].clone();
    let from = misdirected[0].from as usize;
    expect_refusal(&mut clients[0], &misdirected, from, "another client");
    // A value outside ±range is refused, naming the client and the value.
    match clients[0].masked_input(&routed[&0], &[0.0, 0.0, 1.5, 0.0, 0.0, 0.0, 0.0, 0.0]) {
        Err(Error::Client { client: 0, reason }) => assert!(reason.contains("value 2"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // The genuine set still works.
    assert!(clients[0].masked_input(&routed[&0], &x).is_ok());
}

#[test]
fn wrong_or_replayed_revealed_shares_are_refused_and_the_sum_still_recovered() {
    let cfg = config(7, 4, 50);
    let (mut server, clients, masked) = setup(&cfg, |i| i != 6);
    let survivors = server.collect_masked(masked).unwrap();
    let mut responses: Vec<Unmasking> = survivors
        .iter()
        .map(|&s| clients[s as usize].unmask(&survivors).unwrap())
        .collect();
    // Client 1 lies about its share of client 0's self-mask seed.
    let s = responses[1]
        .shares
        .iter_mut()
        .find(|s| s.owner == 0)
        .unwrap();
    s.share.y[0] ^= 0x5a;
    // Client 2 replays a share from another session.
    let s = responses[2]
        .shares
        .iter_mut()
        .find(|s| s.owner == 3)
        .unwrap();
    s.session = 41;
    // Client 3 claims to hold client 4's share.
    let s = responses[3]
        .shares
        .iter_mut()
        .find(|s| s.owner == 5)
        .unwrap();
    s.holder = 4;
    // Client 4 asks for the mask key of a survivor (it would unmask that survivor).
    let s = responses[4]
        .shares
        .iter_mut()
        .find(|s| s.owner == 1)
        .unwrap();
    s.kind = SecretKind::MaskKey;
    let out = server.unmask(responses).unwrap();
    for r in &out.rejected {
        println!("refused: {r}");
    }
    let has = |what: &str| out.rejected.iter().any(|r| r.contains(what));
    assert!(has("share of client 0 at x = 2: does not fit"));
    assert!(has(
        "share of client 3 from client 2: from session 41 (replayed)"
    ));
    assert!(has("share of client 5 from client 3: not held"));
    assert!(has(
        "share of client 1 from client 4: MaskKey share where SelfMask"
    ));
    assert_eq!(out.rejected.len(), 4);
    assert_eq!(out.dropped, vec![6]);
    assert!(worst_error(&out, cfg.len) <= out.error_bound);
}

#[test]
fn clients_refuse_what_would_unmask_them() {
    let cfg = config(5, 3, 4);
    let (mut server, clients, masked) = setup(&cfg, |_| true);
    server.collect_masked(masked).unwrap();
    // Fewer survivors than the threshold.
    assert!(clients[0].unmask(&[0, 1]).is_err());
    // A survivor list naming a client outside the session.
    assert!(clients[0].unmask(&[0, 1, 2, 9]).is_err());
    assert!(SecAggConfig { bits: 63, ..cfg }.check().is_err());
}

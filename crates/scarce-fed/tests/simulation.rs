//! The server's rounds: failures and bad updates are set aside and reported while the round
//! completes with the rest; the checkpoint resumes a restarted server exactly.

use std::collections::BTreeMap;
use std::path::PathBuf;

use scarce_fed::server::{Fit, Server, ServerConfig};
use scarce_fed::simulation::{self, Client};
use scarce_fed::{Adaptive, ClientUpdate, Error, FedAvg, FedOpt, Weights};

fn weights(values: Vec<f64>) -> Weights {
    Weights {
        names: vec!["w".into()],
        shapes: vec![vec![values.len()]],
        layers: vec![values],
    }
}

/// How a test client misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    ErrorInRound(u64),
    PanicInRound(u64),
    NanInRound(u64),
    WrongShape,
    EvaluationError,
}

/// A client that moves the model half way to its own target.
struct Toy {
    id: usize,
    target: Vec<f64>,
    examples: u64,
    fault: Fault,
}

impl Toy {
    fn step(&self, global: &Weights) -> Vec<f64> {
        global.layers[0]
            .iter()
            .zip(&self.target)
            .map(|(g, t)| g + 0.5 * (t - g))
            .collect()
    }
}

impl Client for Toy {
    fn fit(&mut self, global: &Weights, round: u64) -> scarce_fed::Result<Fit> {
        let mut w = self.step(global);
        match self.fault {
            Fault::ErrorInRound(r) if r == round => {
                return Err(Error::config(
                    "disk",
                    format!("site {} lost its data", self.id),
                ))
            }
            Fault::PanicInRound(r) if r == round => panic!("site {} crashed", self.id),
            Fault::NanInRound(r) if r == round => w[1] = f64::NAN,
            Fault::WrongShape => w.push(0.0),
            _ => {}
        }
        let mut metrics = BTreeMap::new();
        metrics.insert("id".to_string(), self.id as f64);
        Ok(Fit {
            update: ClientUpdate {
                weights: weights(w),
                num_examples: self.examples,
            },
            metrics,
        })
    }

    fn evaluate(&mut self, global: &Weights) -> scarce_fed::Result<(u64, BTreeMap<String, f64>)> {
        if self.fault == Fault::EvaluationError {
            return Err(Error::config(
                "test set",
                format!("site {} cannot read it", self.id),
            ));
        }
        let d = global.layers[0]
            .iter()
            .zip(&self.target)
            .map(|(g, t)| (g - t).powi(2))
            .sum::<f64>();
        Ok((
            self.examples,
            BTreeMap::from([("sq_distance".to_string(), d)]),
        ))
    }
}

fn clients(faults: &[Fault]) -> Vec<Toy> {
    faults
        .iter()
        .enumerate()
        .map(|(id, &fault)| Toy {
            id,
            target: vec![id as f64, -(id as f64), 1.0],
            examples: 1 + id as u64,
            fault,
        })
        .collect()
}

#[test]
fn a_failed_evaluation_is_named_not_dropped() {
    let mut cs = clients(&[Fault::None, Fault::EvaluationError, Fault::None]);
    let mut server = Server::new(FedAvg, weights(vec![0.0; 3]), ServerConfig::all(3)).unwrap();
    let mut reports = Vec::new();
    simulation::run(&mut server, &mut cs, 1, true, |r| reports.push(r.clone())).unwrap();
    let r = &reports[0];
    assert_eq!(r.evaluation["clients_evaluated"], 2.0);
    assert_eq!(r.evaluation_failed.len(), 1);
    assert_eq!(r.evaluation_failed[0].0, 1);
    assert!(
        r.evaluation_failed[0].1.contains("site 1 cannot read it"),
        "{:?}",
        r.evaluation_failed
    );
}

#[test]
fn failed_and_bad_clients_are_reported_and_the_round_goes_on() {
    let mut cs = clients(&[
        Fault::None,
        Fault::NanInRound(1),
        Fault::ErrorInRound(2),
        Fault::PanicInRound(2),
        Fault::WrongShape,
    ]);
    let init = weights(vec![0.0; 3]);
    let mut server = Server::new(FedAvg, init.clone(), ServerConfig::all(5)).unwrap();
    let mut reports = Vec::new();
    simulation::run(&mut server, &mut cs, 2, true, |r| reports.push(r.clone())).unwrap();

    let r1 = &reports[0];
    assert_eq!(r1.aggregated, vec![0, 2, 3]);
    assert_eq!(r1.rejected.len(), 2);
    assert_eq!(r1.rejected[0].0, 1);
    assert!(r1.rejected[0].1.contains("NaN"), "{:?}", r1.rejected);
    assert_eq!(r1.rejected[1].0, 4);
    assert!(r1.rejected[1].1.contains("shapes"), "{:?}", r1.rejected);
    // The new global is the FedAvg of clients 0, 2, 3 (weights 1, 3, 4): closed form.
    let expect: Vec<f64> = (0..3)
        .map(|j| {
            [0usize, 2, 3]
                .iter()
                .map(|&i| (1 + i) as f64 * cs[i].step(&init)[j])
                .sum::<f64>()
                / 8.0
        })
        .collect();
    let r2 = &reports[1];
    assert_eq!(r2.aggregated, vec![0, 1]);
    assert_eq!(r2.failed.len(), 2);
    assert!(
        r2.failed[0].1.contains("site 2 lost its data"),
        "{:?}",
        r2.failed
    );
    assert!(
        r2.failed[1].1.contains("panicked: site 3 crashed"),
        "{:?}",
        r2.failed
    );
    assert_eq!(r2.evaluation["clients_evaluated"], 5.0);
    // Round 2 from that global, with clients 0 and 1 (weights 1 and 2).
    let g1 = weights(expect);
    let g2: Vec<f64> = (0..3)
        .map(|j| (cs[0].step(&g1)[j] + 2.0 * cs[1].step(&g1)[j]) / 3.0)
        .collect();
    // Flower's form Σ (n_i/N) w_i rounds differently from Σ n_i w_i / N: a few ulps.
    for (a, b) in server.global().layers[0].iter().zip(&g2) {
        assert!((a - b).abs() <= 1e-15 * b.abs().max(1.0), "{a} vs {b}");
    }
    assert_eq!(
        r2.fit_metrics["id"],
        (0.0 * 1.0 + 1.0 * 2.0) / 3.0,
        "example-weighted metrics of the aggregated clients"
    );

    // Too few usable updates: an error naming the setting, and the server unchanged.
    let mut server = Server::new(
        FedAvg,
        init,
        ServerConfig {
            min_updates: 4,
            ..ServerConfig::all(5)
        },
    )
    .unwrap();
    match simulation::run(&mut server, &mut cs, 1, false, |_| {}) {
        Err(Error::Config { name, reason }) => {
            assert_eq!(name, "min_updates");
            assert!(reason.contains("round 1"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.round(), 0);
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scarce-fed-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fedadam() -> FedOpt {
    FedOpt::new(Adaptive::Adam, weights(vec![0.0; 3]), 0.1, 0.9, 0.99, 1e-3)
}

#[test]
fn a_restarted_server_resumes_exactly() {
    let dir = scratch("resume");
    let path = dir.join("server.safetensors");
    let config = ServerConfig {
        clients: 6,
        per_round: 3,
        min_updates: 2,
        seed: 11,
    };
    let faults = [Fault::None; 6];

    // Uninterrupted: 5 rounds.
    let mut whole = Server::new(fedadam(), weights(vec![0.0; 3]), config.clone()).unwrap();
    simulation::run(&mut whole, &mut clients(&faults), 5, true, |_| {}).unwrap();

    // Stopped after 3 rounds, then a new process picks up the checkpoint.
    let mut first = Server::new(fedadam(), weights(vec![0.0; 3]), config.clone())
        .unwrap()
        .checkpoint_to(&path)
        .unwrap();
    simulation::run(&mut first, &mut clients(&faults), 3, true, |_| {}).unwrap();
    drop(first);
    let mut resumed = Server::new(fedadam(), weights(vec![0.0; 3]), config.clone())
        .unwrap()
        .checkpoint_to(&path)
        .unwrap();
    assert_eq!(resumed.round(), 3);
    simulation::run(&mut resumed, &mut clients(&faults), 5, true, |_| {}).unwrap();
    assert_eq!(resumed.global(), whole.global());
    assert_eq!(resumed.history(), whole.history());
    // Sampling is a function of (seed, round): per_round clients, varying by round.
    let sampled: Vec<&Vec<usize>> = whole.history().iter().map(|r| &r.sampled).collect();
    assert!(sampled.iter().all(|s| s.len() == 3));
    assert!(sampled.windows(2).any(|w| w[0] != w[1]));
    // Only the checkpoint is in the folder: the atomic write leaves no temporary file.
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1);

    // A checkpoint of another config or model layout is refused, naming the file.
    let other = ServerConfig { seed: 12, ..config };
    match Server::new(fedadam(), weights(vec![0.0; 3]), other)
        .unwrap()
        .checkpoint_to(&path)
    {
        Err(Error::Config { reason, .. }) => assert!(reason.contains("server.safetensors")),
        other => panic!("{other:?}"),
    }
    let wider = Server::new(fedadam(), weights(vec![0.0; 4]), whole_config());
    assert!(wider.unwrap().checkpoint_to(&path).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn whole_config() -> ServerConfig {
    ServerConfig {
        clients: 6,
        per_round: 3,
        min_updates: 2,
        seed: 11,
    }
}

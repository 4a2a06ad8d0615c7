//! Five hospitals train one pneumonia classifier without pooling their X-rays.
//!
//! PneumoniaMNIST's training split is divided across 5 sites with Dirichlet(0.3) label skew
//! (some sites see mostly pneumonia, some mostly normal); each site keeps a fifth of its
//! share as a local held-out set. A two-layer perceptron (784-100-2) is trained federatedly
//! with:
//! - FedAvg, FedProx (μ = 0.1) and FedAdam (η = 0.003);
//! - FedAvg with DP-SGD at every site: per-example clipping, Poisson sampling, and the
//!   noise the accountant calibrates so that each site's data is (ε, 10⁻⁵)-DP;
//! - one poisoned site (it sends its update sign-flipped and scaled by 10) under FedAvg and
//!   under Krum (f = 1);
//! - Per-FedAvg (first order): sites train with a scarce-meta inner loop, so that one local
//!   step personalises the model.
//!
//! Test accuracy of the global model on the official test split after every round goes to
//! `accuracy.svg` and `rounds.csv`; `results.md` has the final figures and, for FedAvg and
//! Per-FedAvg, the sites' held-out accuracy before and after local personalisation.
//!
//!     cargo run --release --example federated_hospitals [-- --rounds 30 --epsilon 4 --out DIR]
//!
//! Data: `data/medmnist/pneumoniamnist.safetensors` (bundled, CC BY 4.0).

#[path = "common/cli.rs"]
mod cli;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use scarce::core::{ops, DType, Device, Params, Stream, Tensor};
use scarce::episodes::medmnist::{load_medmnist, Split};
use scarce::episodes::Dataset;
use scarce::eval::plot::{colours, Chart, Figure};
use scarce::fed::accountant;
use scarce::fed::fedprox::proximal_term;
use scarce::fed::partition::dirichlet_label_skew;
use scarce::fed::server::{Fit, Server, ServerConfig};
use scarce::fed::simulation::{self, Client};
use scarce::fed::{Adaptive, ClientUpdate, DpSgd, Error, FedAvg, FedOpt, Krum, Strategy, Weights};
use scarce::meta::{adapt, InnerLoop, Order};

const SITES: usize = 5;
const HIDDEN: usize = 100;
const PIXELS: usize = 28 * 28;
const BATCH: usize = 32;
const LR: f64 = 0.05;
const DELTA: f64 = 1e-5;
/// The poisoned site's update is sign-flipped and scaled by this.
const POISON: f64 = 10.0;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Pixel mean and standard deviation of PneumoniaMNIST's training split (computed by
/// `main` and printed), used to standardise every image.
static NORMALISE: std::sync::OnceLock<(f32, f32)> = std::sync::OnceLock::new();

/// Standardised images `[N, 784]` and labels `[N]` of the items `idx` of `ds`.
fn tensors(ds: &Dataset, idx: &[usize], dev: &Device) -> scarce::core::Result<(Tensor, Tensor)> {
    let mut v = vec![0f32; idx.len() * PIXELS];
    for (chunk, &i) in v.chunks_mut(PIXELS).zip(idx) {
        ds.read(i, chunk)
            .map_err(|e| scarce::core::Error::param("dataset", e.to_string()))?;
    }
    let (mean, std) = NORMALISE.get().copied().unwrap_or((0.0, 1.0));
    for p in &mut v {
        *p = (*p - mean) / std;
    }
    let y: Vec<u32> = idx.iter().map(|&i| ds.labels()[i] as u32).collect();
    Ok((
        Tensor::from_vec(v, (idx.len(), PIXELS), dev)?,
        Tensor::from_vec(y, idx.len(), dev)?,
    ))
}

/// The perceptron's initial weights (PyTorch's default uniform ±1/√fan_in).
fn init(seed: u64, dev: &Device) -> scarce::core::Result<Params> {
    let s = Stream::new(seed, "mlp-init");
    let mut p = Params::new();
    for (k, (fan_in, fan_out)) in [(PIXELS, HIDDEN), (HIDDEN, 2)].into_iter().enumerate() {
        let b = 1.0 / (fan_in as f64).sqrt();
        let layer = s.at(k as u64);
        p.insert(
            format!("fc{}.weight", k + 1),
            layer
                .child("w")
                .uniform_tensor((fan_out, fan_in), -b, b, DType::F32, dev)?,
        );
        p.insert(
            format!("fc{}.bias", k + 1),
            layer
                .child("b")
                .uniform_tensor(fan_out, -b, b, DType::F32, dev)?,
        );
    }
    Ok(p)
}

fn logits(p: &Params, x: &Tensor) -> scarce::core::Result<Tensor> {
    let h = ops::relu(&ops::linear(
        x,
        p.require("fc1.weight")?,
        Some(p.require("fc1.bias")?),
    )?)?;
    ops::linear(&h, p.require("fc2.weight")?, Some(p.require("fc2.bias")?))
}

fn loss(p: &Params, x: &Tensor, y: &Tensor) -> scarce::core::Result<Tensor> {
    ops::cross_entropy(&logits(p, x)?, y)
}

fn accuracy(p: &Params, x: &Tensor, y: &Tensor) -> scarce::core::Result<f64> {
    let pred = logits(p, x)?.argmax(1)?.to_dtype(DType::U32)?;
    let hits = pred
        .eq(y)?
        .to_dtype(DType::F64)?
        .sum_all()?
        .to_scalar::<f64>()?;
    Ok(hits / y.dim(0)? as f64)
}

/// How a site trains locally.
#[derive(Clone, Debug)]
enum Local {
    /// Minibatch SGD.
    Sgd,
    /// SGD on the loss plus `μ/2 ‖w − w_global‖²`.
    Prox(f64),
    /// DP-SGD with Poisson sampling at rate `BATCH / n` and this noise multiplier.
    DpSgd(f64),
    /// Per-FedAvg (first order): a scarce-meta inner step of size α on one half-batch,
    /// then the outer step on the other half at the adapted weights.
    PerFedAvg { alpha: f64 },
}

struct Site {
    id: usize,
    x: Tensor,
    y: Tensor,
    held_x: Tensor,
    held_y: Tensor,
    local: Local,
    /// Sends `global − POISON · (local − global)` instead of its update.
    poisoned: bool,
    seed: u64,
}

fn site_err(id: usize) -> impl Fn(String) -> Error {
    move |reason| Error::Client { client: id, reason }
}

impl Site {
    fn n(&self) -> usize {
        self.x.dim(0).unwrap_or(0)
    }

    fn batch(&self, idx: &[usize]) -> scarce::core::Result<(Tensor, Tensor)> {
        let i = Tensor::from_vec(
            idx.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            idx.len(),
            self.x.device(),
        )?;
        Ok((self.x.index_select(&i, 0)?, self.y.index_select(&i, 0)?))
    }

    /// One local epoch from `start`; returns the weights and the mean training loss (none
    /// under DP-SGD: an un-noised loss sent to the server would bypass the privacy
    /// guarantee).
    fn train(&self, start: &Params, round: u64) -> scarce::fed::Result<(Params, Option<f64>)> {
        let n = self.n();
        let stream = Stream::new(self.seed, "local").at(self.id as u64).at(round);
        let order = stream.permutation(n);
        let anchor = start.detach();
        let mut p = start.detach().to_vars()?;
        let (mut total, mut steps) = (0.0, 0usize);
        match &self.local {
            Local::DpSgd(sigma) => {
                let q = BATCH as f64 / n as f64;
                let mut dp = DpSgd::new(1.0, *sigma)?.poisson(BATCH as f64)?;
                for _ in 0..n / BATCH {
                    // The sample is secret (OS-seeded), as amplification by sampling assumes.
                    let picked = dp.poisson_sample(n, q)?;
                    let out = dp.gradient(&p, picked.len(), |k| {
                        let (x, y) = self.batch(&picked[k..k + 1])?;
                        Ok(loss(&p, &x, &y)?)
                    })?;
                    p = p.axpy(-LR, &out.gradient)?.detach().to_vars()?;
                }
                return Ok((p.detach(), None));
            }
            Local::PerFedAvg { alpha } => {
                let err = site_err(self.id);
                for chunk in order.chunks(2 * BATCH).filter(|c| c.len() > 1) {
                    let (inner, outer) = chunk.split_at(chunk.len() / 2);
                    let (xi, yi) = self.batch(inner)?;
                    let (xo, yo) = self.batch(outer)?;
                    let adapted = adapt(
                        &p,
                        &InnerLoop::sgd(1, *alpha).with_order(Order::First),
                        |theta| Ok(loss(theta, &xi, &yi)?),
                    )
                    .map_err(|e| err(e.to_string()))?;
                    let l = loss(&adapted.params, &xo, &yo)?;
                    let g = p.grads(&l.backward()?)?;
                    total += l.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                    steps += 1;
                    p = p.axpy(-LR, &g)?.detach().to_vars()?;
                }
            }
            Local::Sgd | Local::Prox(_) => {
                for chunk in order.chunks(BATCH) {
                    let (x, y) = self.batch(chunk)?;
                    let mut l = loss(&p, &x, &y)?;
                    total += l.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                    if let Local::Prox(mu) = self.local {
                        l = (l + proximal_term(&p, &anchor, mu)?)?;
                    }
                    let g = p.grads(&l.backward()?)?;
                    p = p.axpy(-LR, &g)?.detach().to_vars()?;
                    steps += 1;
                }
            }
        }
        Ok((p.detach(), Some(total / steps.max(1) as f64)))
    }

    /// Held-out accuracy of `global` before and after one local step of personalisation
    /// (one epoch of SGD; for Per-FedAvg, the one inner step it was trained for).
    fn personalise(&self, global: &Weights) -> scarce::fed::Result<(f64, f64)> {
        let p = global.to_params(DType::F32, self.x.device())?;
        let before = accuracy(&p, &self.held_x, &self.held_y)?;
        let tuned = match self.local {
            Local::PerFedAvg { alpha } => {
                let all: Vec<usize> = (0..self.n()).collect();
                let (x, y) = self.batch(&all)?;
                adapt(
                    &p.to_vars()?,
                    &InnerLoop::sgd(1, alpha).with_order(Order::First),
                    |theta| Ok(loss(theta, &x, &y)?),
                )
                .map_err(|e| site_err(self.id)(e.to_string()))?
                .params
            }
            _ => {
                let plain = Site {
                    local: Local::Sgd,
                    x: self.x.clone(),
                    y: self.y.clone(),
                    held_x: self.held_x.clone(),
                    held_y: self.held_y.clone(),
                    ..*self
                };
                plain.train(&p, u64::MAX)?.0
            }
        };
        Ok((
            before,
            accuracy(&tuned.detach(), &self.held_x, &self.held_y)?,
        ))
    }
}

impl Client for Site {
    fn fit(&mut self, global: &Weights, round: u64) -> scarce::fed::Result<Fit> {
        let start = global.to_params(DType::F32, self.x.device())?;
        let (trained, train_loss) = self.train(&start, round)?;
        let mut weights = Weights::from_params(&trained)?;
        if self.poisoned {
            weights = global.zip_map(&weights, |g, w| g - POISON * (w - g))?;
        }
        Ok(Fit {
            update: ClientUpdate {
                weights,
                num_examples: self.n() as u64,
            },
            metrics: train_loss
                .map(|l| ("train_loss".to_string(), l))
                .into_iter()
                .collect(),
        })
    }

    fn evaluate(&mut self, global: &Weights) -> scarce::fed::Result<(u64, BTreeMap<String, f64>)> {
        let p = global.to_params(DType::F32, self.x.device())?;
        let acc = accuracy(&p, &self.held_x, &self.held_y)?;
        Ok((
            self.held_y.dim(0)? as u64,
            BTreeMap::from([("accuracy".to_string(), acc)]),
        ))
    }
}

struct Run {
    name: String,
    accuracy: Vec<f64>,
    seconds: f64,
    personalised: Option<(f64, f64)>,
    notes: String,
}

struct Data {
    train: Dataset,
    parts: Vec<Vec<usize>>,
    test: (Tensor, Tensor),
}

fn sites(data: &Data, local: &Local, poisoned: Option<usize>, dev: &Device) -> Res<Vec<Site>> {
    let mut out = Vec::new();
    for (id, part) in data.parts.iter().enumerate() {
        // A fifth of each site's share (every fifth item) is its held-out set.
        let held: Vec<usize> = part.iter().skip(4).step_by(5).copied().collect();
        let own: Vec<usize> = part
            .iter()
            .enumerate()
            .filter(|(k, _)| k % 5 != 4)
            .map(|(_, &i)| i)
            .collect();
        let (x, y) = tensors(&data.train, &own, dev)?;
        let (held_x, held_y) = tensors(&data.train, &held, dev)?;
        out.push(Site {
            id,
            x,
            y,
            held_x,
            held_y,
            local: local.clone(),
            poisoned: poisoned == Some(id),
            seed: 7,
        });
    }
    Ok(out)
}

fn federate<S: Strategy>(
    name: &str,
    strategy: S,
    initial: &Weights,
    mut clients: Vec<Site>,
    rounds: u64,
    test: &(Tensor, Tensor),
) -> Res<Run> {
    let start = Instant::now();
    let mut server = Server::new(strategy, initial.clone(), ServerConfig::all(SITES))?;
    let mut acc = Vec::new();
    let mut notes = String::new();
    let bar = cli::bar(rounds as usize, "rounds");
    bar.set_prefix(name.to_string());
    for r in 1..=rounds {
        simulation::run(&mut server, &mut clients, r, false, |report| {
            if !report.failed.is_empty() || !report.rejected.is_empty() {
                let _ = write!(
                    notes,
                    "round {r}: failed {:?}, rejected {:?}; ",
                    report.failed, report.rejected
                );
            }
        })?;
        let p = server.global().to_params(DType::F32, test.0.device())?;
        acc.push(accuracy(&p, &test.0, &test.1)?);
        let loss = server
            .history()
            .last()
            .and_then(|h| h.fit_metrics.get("train_loss").copied());
        let loss = loss.map_or("not reported".to_string(), |l| format!("{l:.4}"));
        bar.inc(1);
        bar.set_message(format!(
            "test accuracy {:.4}, mean local loss {loss}",
            acc[acc.len() - 1]
        ));
    }
    bar.finish();
    let personalised = match clients[0].local {
        _ if clients.iter().all(|c| !c.poisoned) => {
            let (mut before, mut after, mut n) = (0.0, 0.0, 0.0);
            for c in &clients {
                let (b, a) = c.personalise(server.global())?;
                let w = c.held_y.dim(0)? as f64;
                before += b * w;
                after += a * w;
                n += w;
            }
            Some((before / n, after / n))
        }
        _ => None,
    };
    Ok(Run {
        name: name.into(),
        accuracy: acc,
        seconds: start.elapsed().as_secs_f64(),
        personalised,
        notes,
    })
}

/// PneumoniaMNIST over 5 hospital sites: FedAvg / FedProx / FedAdam, DP-SGD, a poisoned
/// site, Per-FedAvg.
#[derive(clap::Parser)]
struct Args {
    /// Federated rounds per run.
    #[arg(long, default_value_t = 30)]
    rounds: u64,
    /// The privacy budget ε of the DP-SGD run (δ = 1e-5).
    #[arg(long, default_value_t = 4.0)]
    epsilon: f64,
    /// Output folder.
    #[arg(long, default_value = "target/federated_hospitals")]
    out: PathBuf,
}

fn plot(runs: &[Run], rounds: u64, path: &Path) -> Res<()> {
    let palette = [
        colours::BLUE,
        colours::ORANGE,
        colours::GREEN,
        colours::RED,
        [148, 103, 189],
        [140, 86, 75],
        [127, 127, 127],
    ];
    let mut chart = Chart::new("Test accuracy of the global model, per round")
        .x_axis("round", Some((1.0, rounds as f64)))
        .y_axis("accuracy", Some((0.4, 1.0)));
    for (r, colour) in runs.iter().zip(palette.iter().cycle()) {
        let points = r
            .accuracy
            .iter()
            .enumerate()
            .map(|(i, &a)| ((i + 1) as f64, a))
            .collect();
        chart = chart.line(r.name.clone(), points, *colour);
    }
    Figure::new(1, (820, 460)).chart(chart).save_svg(path)?;
    Ok(())
}

fn run() -> Res<()> {
    let Args {
        rounds,
        epsilon,
        out,
    } = clap::Parser::parse();
    std::fs::create_dir_all(&out)?;
    let dev = Device::Cpu;
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/medmnist/pneumoniamnist.safetensors");
    let train = load_medmnist(&file, Split::Train)?;
    let mut pixels = vec![0f32; PIXELS];
    let (mut sum, mut sq) = (0f64, 0f64);
    for i in 0..train.len() {
        train.read(i, &mut pixels)?;
        sum += pixels.iter().map(|&p| p as f64).sum::<f64>();
        sq += pixels.iter().map(|&p| (p as f64).powi(2)).sum::<f64>();
    }
    let count = (train.len() * PIXELS) as f64;
    let mean = sum / count;
    let std = (sq / count - mean * mean).sqrt();
    NORMALISE.get_or_init(|| (mean as f32, std as f32));
    println!("pixel mean {mean:.4}, std {std:.4} (training split)");
    let test_ds = load_medmnist(&file, Split::Test)?;
    let all: Vec<usize> = (0..test_ds.len()).collect();
    let test = tensors(&test_ds, &all, &dev)?;
    let parts = dirichlet_label_skew(train.labels(), SITES, 0.3, 50, 2026)?;
    for (i, p) in parts.iter().enumerate() {
        let pneumonia = p.iter().filter(|&&k| train.labels()[k] == 1).count();
        println!(
            "site {i}: {} images, {pneumonia} pneumonia ({:.0}%)",
            p.len(),
            100.0 * pneumonia as f64 / p.len() as f64
        );
    }
    let data = Data { train, parts, test };
    let initial = Weights::from_params(&init(1, &dev)?)?;

    // DP-SGD: each site's noise multiplier keeps its own data (ε, δ)-DP over all rounds of
    // Poisson-sampled steps at rate BATCH / n (one epoch's worth of steps per round).
    let dp_sites = sites(&data, &Local::Sgd, None, &dev)?;
    let mut sigmas = Vec::new();
    for s in &dp_sites {
        let n = s.n();
        let steps = rounds * (n / BATCH) as u64;
        sigmas.push(accountant::noise_multiplier(
            epsilon,
            DELTA,
            BATCH as f64 / n as f64,
            steps,
            0.01,
        )?);
    }
    let sigma = sigmas.iter().copied().fold(0.0, f64::max);
    let spent: Vec<f64> = dp_sites
        .iter()
        .map(|s| {
            let n = s.n();
            accountant::epsilon(
                BATCH as f64 / n as f64,
                sigma,
                rounds * (n / BATCH) as u64,
                DELTA,
            )
            .map(|e| e.0)
        })
        .collect::<Result<_, _>>()?;
    let worst_eps = spent.iter().copied().fold(0.0, f64::max);
    println!(
        "DP-SGD: noise multiplier {sigma:.4} at every site; ε per site {spent:.3?} at δ = {DELTA}"
    );

    let fedadam = FedOpt::new(Adaptive::Adam, initial.clone(), 0.003, 0.9, 0.99, 1e-3);
    let mut runs = Vec::new();
    runs.push(federate(
        "FedAvg",
        FedAvg,
        &initial,
        sites(&data, &Local::Sgd, None, &dev)?,
        rounds,
        &data.test,
    )?);
    runs.push(federate(
        "FedProx (mu 0.1)",
        FedAvg,
        &initial,
        sites(&data, &Local::Prox(0.1), None, &dev)?,
        rounds,
        &data.test,
    )?);
    runs.push(federate(
        "FedAdam",
        fedadam,
        &initial,
        sites(&data, &Local::Sgd, None, &dev)?,
        rounds,
        &data.test,
    )?);
    let dp_name = format!("FedAvg + DP-SGD (eps {worst_eps:.2})");
    runs.push(federate(
        &dp_name,
        FedAvg,
        &initial,
        sites(&data, &Local::DpSgd(sigma), None, &dev)?,
        rounds,
        &data.test,
    )?);
    runs.push(federate(
        "FedAvg with site 4 poisoned",
        FedAvg,
        &initial,
        sites(&data, &Local::Sgd, Some(4), &dev)?,
        rounds,
        &data.test,
    )?);
    let krum = Krum {
        num_malicious: 1,
        to_keep: 0,
    };
    runs.push(federate(
        "Krum (f 1) with site 4 poisoned",
        krum,
        &initial,
        sites(&data, &Local::Sgd, Some(4), &dev)?,
        rounds,
        &data.test,
    )?);
    runs.push(federate(
        "Per-FedAvg (FO, alpha 0.05)",
        FedAvg,
        &initial,
        sites(&data, &Local::PerFedAvg { alpha: 0.05 }, None, &dev)?,
        rounds,
        &data.test,
    )?);

    let mut csv = String::from("round");
    for r in &runs {
        csv.push(',');
        csv.push_str(&r.name);
    }
    csv.push('\n');
    for i in 0..rounds as usize {
        csv.push_str(&(i + 1).to_string());
        for r in &runs {
            let _ = write!(csv, ",{:.6}", r.accuracy[i]);
        }
        csv.push('\n');
    }
    std::fs::write(out.join("rounds.csv"), csv)?;
    plot(&runs, rounds, &out.join("accuracy.svg"))?;

    let mut md = format!(
        "# federated_hospitals\n\nPneumoniaMNIST, {SITES} sites, Dirichlet(0.3) label skew, MLP 784-{HIDDEN}-2, \
         {rounds} rounds of one local epoch (batch {BATCH}, lr {LR}). Test accuracy of the global model on \
         the {} test images.\n\n| # | run | final | best | time (s) | site held-out before → after personalisation |\n| --- | --- | --- | --- | --- | --- |\n",
        data.test.1.dim(0)?
    );
    for (k, r) in runs.iter().enumerate() {
        let best = r.accuracy.iter().copied().fold(0.0, f64::max);
        let pers = r
            .personalised
            .map_or("".into(), |(b, a)| format!("{b:.4} → {a:.4}"));
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {:.4} | {:.1} | {pers} |",
            k + 1,
            r.name,
            r.accuracy[r.accuracy.len() - 1],
            best,
            r.seconds
        );
    }
    let _ = writeln!(
        md,
        "\nDP-SGD: clip 1.0, Poisson sampling at rate {BATCH}/n, noise multiplier {sigma:.4}; ε per site at δ = {DELTA}: {spent:.3?}."
    );
    for r in &runs {
        if !r.notes.is_empty() {
            let _ = writeln!(md, "\n{}: {}", r.name, r.notes);
        }
    }
    std::fs::write(out.join("results.md"), &md)?;
    println!("\n{md}\nwrote {}", out.display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    cli::init_logging();
    cli::exit(run())
}

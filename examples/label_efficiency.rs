//! The label-efficiency benchmark on real medical images: with K labelled training images
//! per class and the rest of the training split as an unlabelled pool, how well does each
//! method do on the official test split? Conv4 from scratch against SimCLR pretraining on
//! the pool followed by a linear probe, fine-tuning, LP-FT or ProtoNet, on the same draws.
//! The protocol is in `scarce::label_efficiency`.
//!
//!     cargo run --release --features ssl --example label_efficiency -- --dataset pneumoniamnist
//!     cargo run --release --features ssl --example label_efficiency -- --dataset breastmnist --quick
//!     cargo run --release --features ssl --example label_efficiency -- --data FILE.npz
//!
//! Writes `report.md`, `rows.json` (every draw), `draws.json` (the labelled sets, in the form
//! `shared/bench/label_efficiency.py --draws` reads) and `auroc_vs_k.svg` under
//! `--out/<data set>`; pretrained encoders are cached under `--out/cache`.

#[path = "common/cli.rs"]
mod cli;

use std::path::PathBuf;

use scarce::core::Device;
use scarce::label_efficiency::{run, Budget, Config, Data, Method, Progress, Row};

/// Label efficiency of scratch training vs SimCLR on a MedMNIST-layout data set.
#[derive(clap::Parser)]
struct Args {
    /// A bundled data set (`data/medmnist/<name>.safetensors`): pneumoniamnist, breastmnist.
    #[arg(long, conflicts_with = "data")]
    dataset: Option<String>,
    /// Any MedMNIST-layout file (`{train,test}_images`, `{train,test}_labels`; .npz or .safetensors).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Labelled images per class (or `all`), comma-separated.
    #[arg(long, value_delimiter = ',')]
    k: Option<Vec<Budget>>,
    /// Random draws of the labelled set per K.
    #[arg(long)]
    draws: Option<usize>,
    /// Methods, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<Method>>,
    /// SimCLR pretraining epochs.
    #[arg(long)]
    simclr_epochs: Option<usize>,
    /// Transfer: use this saved Conv4 encoder (e.g. `<out>/cache/simclr_conv4_pneumoniamnist.safetensors`)
    /// instead of pretraining on the pool; its rows are named after --encoder-label.
    #[arg(long)]
    encoder: Option<PathBuf>,
    /// The name the transferred encoder's rows take in place of `simclr`.
    #[arg(long, default_value = "transfer")]
    encoder_label: String,
    /// Rows of an earlier run on the same data set (its `rows.json`) to put in the report
    /// beside this run's, e.g. Conv4 from scratch for the paired differences.
    #[arg(long)]
    merge: Option<PathBuf>,
    /// Write the report (tables and chart) of this rows file (a `rows.json`, e.g. merged
    /// by --merge) and stop; a `pretrain.json` beside it adds the pretraining line.
    #[arg(long)]
    report_from: Option<PathBuf>,
    /// One K, two draws, short schedules (a smoke run of a few minutes).
    #[arg(long)]
    quick: bool,
    /// Output folder.
    #[arg(long, default_value = "target/label_efficiency")]
    out: PathBuf,
}

struct Bars {
    pretrain: Option<indicatif::ProgressBar>,
    rows: indicatif::ProgressBar,
    epochs: usize,
}

impl Progress for Bars {
    fn epoch(&mut self, r: scarce::ssl::simclr::EpochReport) {
        let bar = self
            .pretrain
            .get_or_insert_with(|| cli::bar(self.epochs, "SimCLR epochs"));
        bar.set_message(format!("loss {:.3}", r.loss));
        bar.inc(1);
    }

    fn row(&mut self, r: &Row) {
        if let Some(b) = self.pretrain.take() {
            b.finish();
        }
        self.rows.set_message(format!(
            "{} K={} draw {}: AUROC {:.3}",
            r.method, r.k, r.draw, r.auroc
        ));
        self.rows.inc(1);
    }
}

/// The tables and chart of an existing rows file, written beside it.
fn report_only(rows_file: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let rows: Vec<Row> = serde_json::from_slice(&std::fs::read(rows_file)?)
        .map_err(|e| format!("{}: {e}", rows_file.display()))?;
    let dir = rows_file.parent().unwrap_or(std::path::Path::new("."));
    let pretrain = std::fs::read(dir.join("pretrain.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let report = scarce::label_efficiency::Report {
        dataset: rows.first().map(|r| r.dataset.clone()).ok_or("no rows")?,
        rows,
        draws: Default::default(),
        pretrain,
    };
    let md = report.markdown();
    std::fs::write(dir.join("report.md"), &md)?;
    scarce::eval::plot::Figure::new(1, (900, 560))
        .chart(report.chart())
        .save_svg(&dir.join("auroc_vs_k.svg"))?;
    println!("{md}");
    Ok(())
}

fn run_cli() -> Result<(), Box<dyn std::error::Error>> {
    let args: Args = clap::Parser::parse();
    if let Some(f) = &args.report_from {
        return report_only(f);
    }
    let file = match (&args.dataset, &args.data) {
        (_, Some(f)) => f.clone(),
        (Some(name), None) => {
            let f = scarce::episodes::data_dir()
                .join("medmnist")
                .join(format!("{name}.safetensors"));
            if !f.is_file() {
                return Err(format!(
                    "no bundled data set `{name}` ({} is absent); pass --data FILE",
                    f.display()
                )
                .into());
            }
            f
        }
        (None, None) => {
            return Err(
                "name a data set: --dataset pneumoniamnist|breastmnist or --data FILE".into(),
            )
        }
    };
    let mut cfg = if args.quick {
        Config::quick()
    } else {
        Config::default()
    };
    if let Some(k) = args.k {
        cfg.budgets = k;
    }
    if let Some(d) = args.draws {
        cfg.draws = d;
    }
    if let Some(m) = args.methods {
        cfg.methods = m;
    }
    if let Some(e) = args.simclr_epochs {
        cfg.simclr.epochs = e;
    }
    cfg.cache = Some(args.out.join("cache"));
    cfg.transfer = args.encoder.map(|f| (args.encoder_label.clone(), f));
    let data = Data::load(&file)?;
    let out = args.out.join(&data.name);
    std::fs::create_dir_all(&out)?;
    eprintln!(
        "{}: {} training images ({} classes, shape {:?}), {} test images",
        data.name,
        data.train_labels.len(),
        data.classes,
        data.sample_shape,
        data.test_labels.len()
    );
    // The labelled sets first, so another tool can run on them while this one trains.
    let draws =
        serde_json::json!({ data.name.clone(): scarce::label_efficiency::draws(&data, &cfg)? });
    std::fs::write(out.join("draws.json"), serde_json::to_string(&draws)?)?;
    let mut bars = Bars {
        pretrain: None,
        rows: cli::bar(cfg.budgets.len() * cfg.draws * cfg.methods.len(), "draws"),
        epochs: cfg.simclr.epochs,
    };
    let started = std::time::Instant::now();
    let mut report = run(&data, &cfg, &Device::Cpu, &mut bars)?;
    bars.rows.finish();
    if let Some(f) = &args.merge {
        let earlier: Vec<Row> = serde_json::from_slice(&std::fs::read(f)?)
            .map_err(|e| format!("{}: {e}", f.display()))?;
        if let Some(r) = earlier.iter().find(|r| r.dataset != data.name) {
            return Err(format!(
                "{} holds rows of `{}`, not `{}`",
                f.display(),
                r.dataset,
                data.name
            )
            .into());
        }
        // Earlier rows first (their methods lead the table); this run's replace duplicates.
        let mut rows: Vec<Row> = earlier
            .into_iter()
            .filter(|e| {
                !report
                    .rows
                    .iter()
                    .any(|r| r.method == e.method && r.k == e.k && r.draw == e.draw)
            })
            .collect();
        rows.append(&mut report.rows);
        report.rows = rows;
    }
    let mut md = report.markdown();
    md.push_str(&format!(
        "\nTotal {:.0} s on the CPU ({} threads).\n",
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    ));
    std::fs::write(out.join("report.md"), &md)?;
    std::fs::write(
        out.join("rows.json"),
        serde_json::to_string_pretty(&report.rows)?,
    )?;
    if let Some(p) = &report.pretrain {
        std::fs::write(out.join("pretrain.json"), serde_json::to_string_pretty(p)?)?;
    }
    scarce::eval::plot::Figure::new(1, (900, 560))
        .chart(report.chart())
        .save_svg(&out.join("auroc_vs_k.svg"))?;
    println!("{md}");
    println!("wrote {}", out.display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    cli::init_logging();
    cli::exit(run_cli())
}

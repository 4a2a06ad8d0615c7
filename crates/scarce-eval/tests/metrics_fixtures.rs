//! scikit-learn's and scipy's numbers (`shared/fixtures/metrics`): binary AUROC (with and
//! without ties), one-vs-rest and one-vs-one AUROC, confusion matrix, recall, balanced
//! accuracy, and the Fréchet distance. Every case in the folder is checked; the count is
//! printed.

use scarce_core::{DType, Device, Error, Result};
use scarce_fixtures::{check_family, rel_err_slices, within, Case};

/// Counting metrics are exact (the README asks for 1e-14); the Fréchet distance goes through
/// a matrix square root (1e-8 relative).
const TOL: f64 = 1e-14;
const TOL_FRECHET: f64 = 1e-8;

fn vec_f64(c: &Case, name: &str) -> Result<Vec<f64>> {
    Ok(c.f64(name, &Device::Cpu)?.flatten_all()?.to_vec1::<f64>()?)
}

fn vec_usize(c: &Case, name: &str) -> Result<Vec<usize>> {
    let t = c
        .tensor(name, &Device::Cpu)?
        .to_dtype(DType::I64)?
        .flatten_all()?;
    Ok(t.to_vec1::<i64>()?
        .into_iter()
        .map(|v| v as usize)
        .collect())
}

fn close(name: &str, got: f64, want: f64) -> Result<f64> {
    close_within(name, got, want, TOL)
}

fn close_within(name: &str, got: f64, want: f64, tol: f64) -> Result<f64> {
    within(name, rel_err_slices(&[got], &[want])?, tol)
        .map_err(|e| Error::param(name, format!("got {got}, want {want}: {e}")))
}

/// A per-class vector against the case's tensor `name`: lengths must agree.
fn close_vec(c: &Case, name: &str, got: &[f64], tol: f64) -> Result<f64> {
    let want = vec_f64(c, name)?;
    within(name, rel_err_slices(got, &want)?, tol)
}

fn scalar(c: &Case, name: &str) -> Result<f64> {
    Ok(vec_f64(c, name)?[0])
}

fn eval_err(e: scarce_eval::Error) -> Error {
    Error::param("scarce-eval", e.to_string())
}

fn check(c: &Case) -> Result<f64> {
    let mut worst: f64 = 0.0;
    let kinds = [
        "auc",
        "auc_per_class_ovr",
        "confusion_matrix",
        "frechet_distance",
    ];
    if !kinds.iter().any(|k| c.has(k)) {
        return Err(Error::param(
            c.name.clone(),
            format!("no result tensor this test knows (one of {kinds:?})"),
        ));
    }
    if c.has("auc") {
        let y = vec_usize(c, "y_true")?;
        let s = vec_f64(c, "y_score")?;
        let pos: Vec<bool> = y.iter().map(|&v| v == 1).collect();
        worst = worst.max(close(
            "auc",
            scarce_eval::auroc(&pos, &s).map_err(eval_err)?,
            scalar(c, "auc")?,
        )?);
    }
    if c.has("auc_per_class_ovr") {
        let y = vec_usize(c, "y_true")?;
        let scores = c.f64("y_score", &Device::Cpu)?.to_vec2::<f64>()?;
        let ovr = scarce_eval::auroc_ovr(&y, &scores).map_err(eval_err)?;
        worst = worst.max(close_vec(c, "auc_per_class_ovr", &ovr.per_class, TOL)?);
        worst = worst.max(close(
            "auc_ovr_macro",
            ovr.macro_avg,
            scalar(c, "auc_ovr_macro")?,
        )?);
        worst = worst.max(close(
            "auc_ovr_weighted",
            ovr.weighted,
            scalar(c, "auc_ovr_weighted")?,
        )?);
        let ovo = scarce_eval::auroc_ovo(&y, &scores).map_err(eval_err)?;
        worst = worst.max(close("auc_ovo_macro", ovo, scalar(c, "auc_ovo_macro")?)?);
    }
    if c.has("confusion_matrix") {
        let want = c
            .tensor("confusion_matrix", &Device::Cpu)?
            .to_dtype(DType::I64)?
            .to_vec2::<i64>()?;
        let k = want.len();
        let cm = scarce_eval::ConfusionMatrix::new(
            &vec_usize(c, "y_true")?,
            &vec_usize(c, "y_pred")?,
            k,
        )
        .map_err(eval_err)?;
        let got: Vec<Vec<i64>> = cm
            .counts
            .iter()
            .map(|r| r.iter().map(|&v| v as i64).collect())
            .collect();
        if got != want {
            return Err(Error::param(
                "confusion_matrix",
                format!("got {got:?}, want {want:?}"),
            ));
        }
        worst = worst.max(close_vec(c, "recall_per_class", &cm.sensitivity(), TOL)?);
        // Accuracy and specificity are not stored by the generator; their definitions are
        // evaluated here on its labels and on scikit-learn's matrix, element by element:
        // accuracy_score = mean(y_true == y_pred); specificity of class i = TN / (TN + FP),
        // with the negatives the samples whose true class is not i.
        let (yt, yp) = (vec_usize(c, "y_true")?, vec_usize(c, "y_pred")?);
        let agree = yt.iter().zip(&yp).filter(|(a, b)| a == b).count();
        worst = worst.max(close(
            "accuracy",
            cm.accuracy(),
            agree as f64 / yt.len() as f64,
        )?);
        let spec: Vec<f64> = (0..k)
            .map(|i| {
                let (mut tn, mut neg) = (0i64, 0i64);
                for (_, row) in want.iter().enumerate().filter(|(t, _)| *t != i) {
                    neg += row.iter().sum::<i64>();
                    tn += row
                        .iter()
                        .enumerate()
                        .filter(|(p, _)| *p != i)
                        .map(|(_, v)| v)
                        .sum::<i64>();
                }
                tn as f64 / neg as f64
            })
            .collect();
        worst = worst.max(within(
            "specificity",
            rel_err_slices(&cm.specificity(), &spec)?,
            TOL,
        )?);
        worst = worst.max(close(
            "balanced_accuracy",
            cm.balanced_accuracy(false),
            scalar(c, "balanced_accuracy")?,
        )?);
        worst = worst.max(close(
            "balanced_accuracy_adjusted",
            cm.balanced_accuracy(true),
            scalar(c, "balanced_accuracy_adjusted")?,
        )?);
    }
    if c.has("frechet_distance") {
        let a = c.f64("features_a", &Device::Cpu)?.to_vec2::<f64>()?;
        let b = c.f64("features_b", &Device::Cpu)?.to_vec2::<f64>()?;
        let (ma, sa) = scarce_eval::frechet::mean_cov(&a).map_err(eval_err)?;
        let (mb, sb) = scarce_eval::frechet::mean_cov(&b).map_err(eval_err)?;
        // Means and unbiased covariances (np.cov) are sums: exact up to rounding.
        for (name, got) in [
            ("mu_a", ma.clone()),
            ("mu_b", mb.clone()),
            ("sigma_a", sa.concat()),
            ("sigma_b", sb.concat()),
        ] {
            if c.has(name) {
                worst = worst.max(close_vec(c, name, &got, TOL_FRECHET)?);
            }
        }
        let tsp = scarce_eval::frechet::trace_sqrt_product(&sa, &sb);
        worst = worst.max(close_within(
            "trace_sqrt_product",
            tsp,
            scalar(c, "trace_sqrt_product")?,
            TOL_FRECHET,
        )?);
        let fd = scarce_eval::frechet_distance(&a, &b).map_err(eval_err)?;
        worst = worst.max(close_within(
            "frechet_distance",
            fd,
            scalar(c, "frechet_distance")?,
            TOL_FRECHET,
        )?);
    }
    Ok(worst)
}

#[test]
fn metrics_match_scikit_learn() {
    let Some(report) = check_family("metrics", check).unwrap() else {
        return;
    };
    assert!(
        report.failures.is_empty(),
        "failures:\n{}",
        report.failures.join("\n")
    );
    assert!(
        report.checked > 0,
        "the metrics fixture folder holds no case"
    );
}

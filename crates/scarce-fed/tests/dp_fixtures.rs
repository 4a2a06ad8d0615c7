//! The RDP accountant against Opacus (`fixtures/dp/`, README there): one-step RDP vectors,
//! ε over a grid of noise, rate and steps, and the noise multiplier for a target ε. Every
//! JSON file of the folder is read; rows for accountants not implemented here (PRV) are
//! counted and named, not checked.

use scarce_fed::accountant::{compute_rdp, epsilon, epsilon_from_rdp, noise_multiplier};
use serde_json::Value;

const REL: f64 = 1e-9;

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number"))
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn accountant_matches_opacus() {
    let Some(files) = scarce_fixtures::family_files("dp", "json").unwrap() else {
        return;
    };
    let (mut checked, mut skipped, mut worst) = (0usize, Vec::new(), 0.0f64);
    let mut failures = Vec::new();
    for path in &files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let mut check = |what: String, err: f64| {
            worst = worst.max(err);
            checked += 1;
            let agrees = err <= REL; // false for NaN
            if !agrees {
                failures.push(format!("{name}: {what}: relative error {err:.2e}"));
            }
        };
        if let Some(single) = doc["rdp_single_step"].as_array() {
            let orders: Vec<f64> = doc["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            for row in single {
                let (sigma, q) = (f(row, "noise_multiplier"), f(row, "sample_rate"));
                let ours = compute_rdp(q, sigma, 1, &orders);
                let want: Vec<f64> = row["rdp"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap_or(f64::NAN))
                    .collect();
                if ours.len() != want.len() {
                    check(
                        format!("{} RDP orders where Opacus has {}", ours.len(), want.len()),
                        f64::INFINITY,
                    );
                    continue;
                }
                // A value JSON cannot hold (Opacus' infinite RDP is written as null) is
                // named, not compared.
                let unstored = want.iter().filter(|w| w.is_nan()).count();
                if unstored > 0 {
                    skipped.push(format!("{name}: {unstored} RDP orders stored as null"));
                }
                // Relative to the vector's largest value, as every tensor comparison here:
                // the RDP of tiny orders is ~1e-6 of the largest and carries its rounding.
                let (a, b): (Vec<f64>, Vec<f64>) = ours
                    .iter()
                    .zip(&want)
                    .filter(|(_, w)| !w.is_nan())
                    .map(|(a, b)| (*a, *b))
                    .unzip();
                let err = scarce_fixtures::rel_err_slices(&a, &b).unwrap_or(f64::INFINITY);
                check(format!("rdp one step, sigma {sigma}, q {q}"), err);
            }
            for row in doc["entries"].as_array().unwrap() {
                let (sigma, q, steps, delta) = (
                    f(row, "noise_multiplier"),
                    f(row, "sample_rate"),
                    f(row, "steps") as u64,
                    f(row, "delta"),
                );
                let (eps, alpha) =
                    epsilon_from_rdp(&orders, &compute_rdp(q, sigma, steps, &orders), delta);
                let mut err = rel(eps, f(row, "epsilon"));
                if alpha != f(row, "best_alpha") {
                    err = f64::INFINITY;
                }
                check(format!("epsilon sigma {sigma} q {q} steps {steps}"), err);
            }
        } else if name.starts_with("noise_multiplier") {
            for row in doc["entries"].as_array().unwrap() {
                if row["accountant"].as_str() != Some("rdp") {
                    skipped.push(format!("{name}: {} row", row["accountant"]));
                    continue;
                }
                let (target, delta, q, steps, tol) = (
                    f(row, "target_epsilon"),
                    f(row, "target_delta"),
                    f(row, "sample_rate"),
                    f(row, "steps") as u64,
                    f(row, "epsilon_tolerance"),
                );
                let sigma = noise_multiplier(target, delta, q, steps, tol).unwrap();
                let at = epsilon(q, sigma, steps, delta).unwrap().0;
                check(
                    format!("noise for eps {target}, q {q}, steps {steps}"),
                    rel(sigma, f(row, "noise_multiplier"))
                        .max(rel(at, f(row, "epsilon_at_noise_multiplier"))),
                );
            }
        } else if let Some(entries) = doc["entries"].as_array() {
            // PRV: compare our RDP epsilon with the file's RDP column, count the PRV rows.
            for row in entries {
                if let Some(r) = row["rdp_epsilon"].as_f64() {
                    let e = epsilon(
                        f(row, "sample_rate"),
                        f(row, "noise_multiplier"),
                        f(row, "steps") as u64,
                        f(row, "delta"),
                    )
                    .unwrap()
                    .0;
                    check(format!("rdp epsilon beside PRV, {row}"), rel(e, r));
                }
                skipped.push(format!(
                    "{name}: PRV epsilon (PRV accountant not implemented)"
                ));
            }
        } else {
            failures.push(format!("{name}: no table this test knows"));
        }
    }
    println!("dp fixtures: {} files, {checked} values checked (largest relative error {worst:.1e}), {} rows not checked", files.len(), skipped.len());
    for s in &skipped {
        println!("  not checked: {s}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(checked > 0, "no dp fixture values found");
}

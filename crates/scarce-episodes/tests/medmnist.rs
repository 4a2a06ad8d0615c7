//! MedMNIST files in `../shared/data/medmnist/`: every file `manifest.json` lists and the
//! folder holds is loaded, split by split, and its sizes, sample shape and class counts
//! compared with the manifest (computed in Python). Skipped when `../shared` is absent.

use std::path::PathBuf;

use scarce_episodes::medmnist::{load_medmnist, Split};

fn medmnist_dir() -> Option<PathBuf> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("shared/data/medmnist"))
        .chain(here.ancestors().map(|a| a.join("../shared/data/medmnist")))
        .find(|p| p.join("manifest.json").is_file())
}

#[test]
fn split_sizes_and_class_counts_match_the_manifest() {
    let Some(dir) = medmnist_dir() else {
        println!("../shared/data/medmnist absent: skipped");
        return;
    };
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let mut checked = 0;
    for entry in manifest.as_array().unwrap() {
        let file = dir.join(entry["file"].as_str().unwrap());
        let (Some(shapes), Some(counts)) = (entry.get("shapes"), entry.get("class_counts")) else {
            continue;
        };
        if !file.is_file() {
            println!("{}: listed but not present, skipped", file.display());
            continue;
        }
        for split in [Split::Train, Split::Val, Split::Test] {
            let ds = load_medmnist(&file, split).unwrap();
            let shape: Vec<usize> = shapes[format!("{}_images", split.key())][0]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(ds.len(), shape[0], "{} {}", file.display(), split.key());
            assert_eq!(&ds.sample_shape()[1..], &shape[1..]);
            let expected: Vec<usize> = counts[split.key()]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let got: Vec<usize> = (0..ds.n_classes())
                .map(|c| ds.class_samples(c).len())
                .collect();
            assert_eq!(got, expected, "{} {}", file.display(), split.key());
            println!(
                "{} {}: {} samples {:?}, classes {got:?}",
                file.display(),
                split.key(),
                ds.len(),
                ds.sample_shape()
            );
            checked += 1;
        }
    }
    println!("checked {checked} splits");
    assert!(checked > 0, "no MedMNIST file of the manifest was found");
}

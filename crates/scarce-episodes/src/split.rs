//! Splits: classes into meta-train / validation / test (few-shot learning tests on classes
//! never seen in training), and samples into train / validation / test by patient (no
//! patient's images on both sides).

use scarce_core::rng::Stream;

use crate::dataset::Dataset;
use crate::error::{Error, Result};

/// Three disjoint lists of class ids.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClassSplit {
    /// Meta-training classes.
    pub train: Vec<usize>,
    /// Validation classes.
    pub val: Vec<usize>,
    /// Test classes.
    pub test: Vec<usize>,
}

impl ClassSplit {
    /// A seeded random split of `n_classes` classes into `n_train`, `n_val` and the rest.
    pub fn seeded(n_classes: usize, n_train: usize, n_val: usize, seed: u64) -> Result<Self> {
        if n_train + n_val > n_classes {
            return Err(Error::param(
                "n_train + n_val",
                format!("{} exceeds the {n_classes} classes", n_train + n_val),
            ));
        }
        let order = Stream::new(seed, "class-split").permutation(n_classes);
        Ok(ClassSplit {
            train: order[..n_train].to_vec(),
            val: order[n_train..n_train + n_val].to_vec(),
            test: order[n_train + n_val..].to_vec(),
        })
    }

    /// An explicit split by class names of `dataset`; every name must exist, none twice.
    pub fn by_names(
        dataset: &Dataset,
        train: &[&str],
        val: &[&str],
        test: &[&str],
    ) -> Result<Self> {
        let find = |n: &&str| {
            (0..dataset.n_classes())
                .find(|&c| dataset.class_name(c) == *n)
                .ok_or_else(|| {
                    Error::param(
                        "class names",
                        format!("no class named `{n}` in `{}`", dataset.name()),
                    )
                })
        };
        let split = ClassSplit {
            train: train.iter().map(find).collect::<Result<_>>()?,
            val: val.iter().map(find).collect::<Result<_>>()?,
            test: test.iter().map(find).collect::<Result<_>>()?,
        };
        split.check(dataset.n_classes())?;
        Ok(split)
    }

    /// Checks the lists are in range and disjoint.
    pub fn check(&self, n_classes: usize) -> Result<()> {
        let mut seen = vec![false; n_classes];
        for &c in self.train.iter().chain(&self.val).chain(&self.test) {
            if c >= n_classes {
                return Err(Error::param(
                    "split",
                    format!("class {c} out of range ({n_classes} classes)"),
                ));
            }
            if std::mem::replace(&mut seen[c], true) {
                return Err(Error::param(
                    "split",
                    format!("class {c} is in more than one part"),
                ));
            }
        }
        Ok(())
    }

    /// The three class subsets of `dataset`, each relabelled from 0.
    pub fn apply(&self, dataset: &Dataset) -> Result<[Dataset; 3]> {
        self.check(dataset.n_classes())?;
        Ok([
            dataset.select_classes(&self.train)?,
            dataset.select_classes(&self.val)?,
            dataset.select_classes(&self.test)?,
        ])
    }
}

/// Splits samples by group (patient): groups are shuffled with `seed` and dealt out so
/// that the parts hold about `fractions` of the groups; every group's samples stay
/// together. Classes are unchanged.
pub fn group_split(dataset: &Dataset, fractions: [f64; 3], seed: u64) -> Result<[Dataset; 3]> {
    let total: f64 = fractions.iter().sum();
    if fractions.iter().any(|&f| f.is_nan() || f < 0.0) || (total - 1.0).abs() > 1e-9 {
        return Err(Error::param(
            "fractions",
            format!("must be non-negative and sum to 1, got {fractions:?}"),
        ));
    }
    if dataset.is_empty() {
        return Err(Error::Empty(dataset.name().to_string()));
    }
    let mut group_ids: Vec<usize> = (0..dataset.len()).map(|i| dataset.group(i)).collect();
    group_ids.sort_unstable();
    group_ids.dedup();
    let order = Stream::new(seed, "group-split").permutation(group_ids.len());
    let n = group_ids.len() as f64;
    let cut1 = (fractions[0] * n).round() as usize;
    let cut2 = ((fractions[0] + fractions[1]) * n).round() as usize;
    let mut part_of = std::collections::HashMap::new();
    for (rank, &k) in order.iter().enumerate() {
        let part = if rank < cut1 {
            0
        } else if rank < cut2 {
            1
        } else {
            2
        };
        part_of.insert(group_ids[k], part);
    }
    let mut parts: [Vec<usize>; 3] = Default::default();
    for i in 0..dataset.len() {
        parts[part_of[&dataset.group(i)]].push(i);
    }
    Ok([
        dataset.select_samples(&parts[0])?,
        dataset.select_samples(&parts[1])?,
        dataset.select_samples(&parts[2])?,
    ])
}

//! Omniglot (Lake et al. 2015) from its standard npz files: `images_background.npz`
//! (964 characters of 30 alphabets) and `images_evaluation.npz` (659 characters of 20
//! alphabets), 20 drawings each at 105×105. The loader resizes to the requested side with
//! Pillow's Lanczos filter (what the Python loaders do) and stores strokes bright.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::npy::read_npz_member;
use crate::resize::lanczos_u8;

/// Which of Omniglot's two sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OmniglotSet {
    /// `images_background.npz`: the 30 alphabets used for (meta-)training.
    Background,
    /// `images_evaluation.npz`: the 20 alphabets held out for evaluation.
    Evaluation,
}

impl OmniglotSet {
    fn file(self) -> &'static str {
        match self {
            OmniglotSet::Background => "images_background.npz",
            OmniglotSet::Evaluation => "images_evaluation.npz",
        }
    }

    /// Global character id of this set's first character (background first).
    fn first_id(self) -> usize {
        match self {
            OmniglotSet::Background => 0,
            OmniglotSet::Evaluation => 964,
        }
    }
}

/// An Omniglot set: the dataset (one class per character, 20 drawings each, `[1, s, s]`
/// samples in `[0, 1]`, strokes bright) and which alphabet each character belongs to.
#[derive(Clone, Debug)]
pub struct Omniglot {
    /// One class per character, named `Alphabet/characterNN`.
    pub dataset: Dataset,
    /// Alphabet names of this set.
    pub alphabets: Vec<String>,
    /// For each class, its index into `alphabets`.
    pub class_alphabet: Vec<usize>,
}

impl Omniglot {
    /// Loads `set` from the folder holding the two npz files and `alphabets.csv`, resizing
    /// 105×105 drawings to `side × side` (28 in the few-shot literature; 105 keeps them).
    pub fn load(dir: &Path, set: OmniglotSet, side: usize) -> Result<Self> {
        if side == 0 {
            return Err(Error::param("side", "must be positive"));
        }
        let path = dir.join(set.file());
        let images = read_npz_member(&path, "images")?;
        let [chars, drawers, h, w] = images.shape[..] else {
            return Err(Error::format(
                &path,
                format!(
                    "images must be [chars, drawers, 105, 105], got {:?}",
                    images.shape
                ),
            ));
        };
        let bits = images
            .bytes()
            .ok_or_else(|| Error::format(&path, "images must be a boolean array"))?;
        // In the npz, `true` is paper and `false` ink; strokes are stored bright here.
        let resized: Vec<u8> = bits
            .par_chunks(h * w)
            .map(|img| {
                let ink: Vec<u8> = img.iter().map(|&b| if b == 0 { 255 } else { 0 }).collect();
                if side == h && side == w {
                    Ok(ink)
                } else {
                    lanczos_u8(&ink, h, w, side, side)
                }
            })
            .collect::<Result<Vec<Vec<u8>>>>()?
            .concat();
        let labels = (0..chars)
            .flat_map(|c| std::iter::repeat_n(c, drawers))
            .collect();
        let (alphabets, class_alphabet, names) = alphabets(dir, set, chars)?;
        let dataset = Dataset::from_u8(
            &format!(
                "omniglot-{}",
                if set == OmniglotSet::Background {
                    "background"
                } else {
                    "evaluation"
                }
            ),
            &[1, side, side],
            resized,
            labels,
        )?
        .with_class_names(names)?;
        Ok(Omniglot {
            dataset,
            alphabets,
            class_alphabet,
        })
    }

    /// The dataset restricted to the given alphabets (indices into `alphabets`), classes
    /// renumbered in order.
    pub fn alphabets_subset(&self, keep: &[usize]) -> Result<Dataset> {
        let classes: Vec<usize> = (0..self.class_alphabet.len())
            .filter(|&c| keep.contains(&self.class_alphabet[c]))
            .collect();
        self.dataset.select_classes(&classes)
    }
}

/// Reads `alphabets.csv` (alphabet_idx, name, set, first_char_id0, last_char_id0, ...):
/// alphabet names of this set, the alphabet of each character and character names.
fn alphabets(
    dir: &Path,
    set: OmniglotSet,
    chars: usize,
) -> Result<(Vec<String>, Vec<usize>, Vec<String>)> {
    let path: PathBuf = dir.join("alphabets.csv");
    let mut reader = csv::Reader::from_path(&path)
        .map_err(|e| Error::format(&path, format!("cannot read: {e}")))?;
    let mut names = Vec::new();
    let mut class_alphabet = vec![usize::MAX; chars];
    let mut char_names = vec![String::new(); chars];
    for (row, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| Error::format(&path, format!("row {}: {e}", row + 1)))?;
        let field = |i: usize| rec.get(i).unwrap_or("").trim().to_string();
        let num = |i: usize| {
            field(i).parse::<usize>().map_err(|_| {
                Error::format(
                    &path,
                    format!("row {}: column {} is not a number", row + 1, i + 1),
                )
            })
        };
        let first = num(3)?;
        let last = num(4)?;
        let in_set = first >= set.first_id() && last < set.first_id() + chars;
        if !in_set {
            continue;
        }
        let a = names.len();
        names.push(field(1));
        for id in first..=last {
            let c = id - set.first_id();
            class_alphabet[c] = a;
            char_names[c] = format!("{}/character{:02}", field(1), id - first + 1);
        }
    }
    if let Some(c) = class_alphabet.iter().position(|&a| a == usize::MAX) {
        return Err(Error::format(
            &path,
            format!(
                "character {} of {:?} belongs to no alphabet",
                c + set.first_id(),
                set
            ),
        ));
    }
    Ok((names, class_alphabet, char_names))
}

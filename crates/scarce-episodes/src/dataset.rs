//! [`Dataset`]: indexed samples with a class label, an optional group (patient) and site,
//! and an optional label map; the class index is built once. Pixels live in one shared
//! buffer, so class and patient subsets are cheap views.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::resize::rot90_square;

/// The pixel buffer of every sample, one row per sample.
#[derive(Debug)]
enum Pixels {
    /// 8-bit samples, read as `value / 255`.
    U8(Vec<u8>),
    /// Floating-point samples, read as they are.
    F32(Vec<f32>),
}

#[derive(Debug)]
struct Storage {
    pixels: Pixels,
    /// Integer label maps (segmentation masks), one per row, spatial shape of the sample.
    masks: Option<Vec<u8>>,
}

/// Interned string ids: samples hold small integers, the names are kept once.
#[derive(Clone, Debug, Default)]
struct Interned {
    ids: Vec<u32>,
    names: Vec<String>,
}

impl Interned {
    fn new(values: Vec<String>) -> Self {
        let mut lookup: HashMap<String, u32> = HashMap::new();
        let mut names = Vec::new();
        let ids = values
            .into_iter()
            .map(|v| {
                *lookup.entry(v.clone()).or_insert_with(|| {
                    names.push(v);
                    (names.len() - 1) as u32
                })
            })
            .collect();
        Interned { ids, names }
    }

    fn select(&self, keep: &[usize]) -> Self {
        Interned {
            ids: keep.iter().map(|&i| self.ids[i]).collect(),
            names: self.names.clone(),
        }
    }
}

/// A labelled set of same-shaped samples (channels-first: `[C, H, W]` or `[C, D, H, W]`).
///
/// Classes are numbered `0..n_classes()`; [`Dataset::class_name`] keeps what they were
/// called. Groups are the unit that must not straddle a split or an episode's support and
/// query (a patient); sites are kept for federated partitioning.
#[derive(Clone, Debug)]
pub struct Dataset {
    name: String,
    sample_shape: Vec<usize>,
    storage: Arc<Storage>,
    rows: Vec<usize>,
    labels: Vec<usize>,
    class_names: Vec<String>,
    groups: Option<Interned>,
    sites: Option<Interned>,
    class_index: Vec<Vec<usize>>,
}

impl Dataset {
    fn build(
        name: &str,
        sample_shape: &[usize],
        pixels: Pixels,
        labels: Vec<usize>,
    ) -> Result<Self> {
        let per: usize = sample_shape.iter().product();
        if sample_shape.len() < 2 || per == 0 {
            return Err(Error::param(
                "sample_shape",
                format!("need a channels-first shape like [C, H, W], got {sample_shape:?}"),
            ));
        }
        let n_values = match &pixels {
            Pixels::U8(v) => v.len(),
            Pixels::F32(v) => v.len(),
        };
        if n_values != per * labels.len() {
            return Err(Error::param(
                "pixels",
                format!(
                    "{} labels of shape {sample_shape:?} need {} values, got {n_values}",
                    labels.len(),
                    per * labels.len()
                ),
            ));
        }
        let n_classes = labels.iter().map(|&l| l + 1).max().unwrap_or(0);
        let mut ds = Dataset {
            name: name.to_string(),
            sample_shape: sample_shape.to_vec(),
            storage: Arc::new(Storage {
                pixels,
                masks: None,
            }),
            rows: (0..labels.len()).collect(),
            labels,
            class_names: (0..n_classes).map(|c| c.to_string()).collect(),
            groups: None,
            sites: None,
            class_index: Vec::new(),
        };
        ds.reindex();
        Ok(ds)
    }

    /// 8-bit samples (read as `value / 255` in `[0, 1]`), row-major, `labels.len()` rows
    /// of `sample_shape`.
    pub fn from_u8(
        name: &str,
        sample_shape: &[usize],
        pixels: Vec<u8>,
        labels: Vec<usize>,
    ) -> Result<Self> {
        Self::build(name, sample_shape, Pixels::U8(pixels), labels)
    }

    /// Floating-point samples, row-major, `labels.len()` rows of `sample_shape`.
    pub fn from_f32(
        name: &str,
        sample_shape: &[usize],
        pixels: Vec<f32>,
        labels: Vec<usize>,
    ) -> Result<Self> {
        Self::build(name, sample_shape, Pixels::F32(pixels), labels)
    }

    fn reindex(&mut self) {
        let mut index = vec![Vec::new(); self.class_names.len()];
        for (i, &l) in self.labels.iter().enumerate() {
            index[l].push(i);
        }
        self.class_index = index;
    }

    /// Names the classes; there must be one name per class id in use (or more, for
    /// classes with no sample here).
    pub fn with_class_names(mut self, names: Vec<String>) -> Result<Self> {
        if names.len() < self.class_names.len() {
            return Err(Error::param(
                "class_names",
                format!(
                    "{} names for {} classes in `{}`",
                    names.len(),
                    self.class_names.len(),
                    self.name
                ),
            ));
        }
        self.class_names = names;
        self.reindex();
        Ok(self)
    }

    /// Attaches a group (patient) to each sample.
    pub fn with_groups(mut self, groups: Vec<String>) -> Result<Self> {
        self.check_per_sample("groups", groups.len())?;
        self.groups = Some(Interned::new(groups));
        Ok(self)
    }

    /// Attaches a site (hospital, scanner) to each sample.
    pub fn with_sites(mut self, sites: Vec<String>) -> Result<Self> {
        self.check_per_sample("sites", sites.len())?;
        self.sites = Some(Interned::new(sites));
        Ok(self)
    }

    /// Attaches a label map to each sample (spatial shape of the sample, one byte per
    /// voxel, row-major). Only on a dataset that is not a subset of another.
    pub fn with_masks(mut self, masks: Vec<u8>) -> Result<Self> {
        let per: usize = self.sample_shape[1..].iter().product();
        let sample_len = self.sample_len();
        let n = self.rows.len();
        let storage = Arc::get_mut(&mut self.storage)
            .ok_or_else(|| Error::param("masks", "attach masks before taking subsets"))?;
        let whole = storage_values(storage) == n * sample_len;
        if !whole {
            return Err(Error::param("masks", "attach masks before taking subsets"));
        }
        if masks.len() != per * n {
            return Err(Error::param(
                "masks",
                format!("need {} values, got {}", per * n, masks.len()),
            ));
        }
        storage.masks = Some(masks);
        Ok(self)
    }

    fn check_per_sample(&self, what: &str, got: usize) -> Result<()> {
        if got != self.len() {
            return Err(Error::param(
                what,
                format!(
                    "{} samples in `{}`, got {got} values",
                    self.len(),
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// The dataset's name (used in errors and episode-set fingerprints).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of one sample, channels first.
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// Values per sample.
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// Number of class ids (some may have no samples in a subset).
    pub fn n_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Class ids of every sample.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The name of class `c`.
    pub fn class_name(&self, c: usize) -> &str {
        &self.class_names[c]
    }

    /// The samples of class `c`, in dataset order.
    pub fn class_samples(&self, c: usize) -> &[usize] {
        &self.class_index[c]
    }

    /// Group (patient) id of sample `i`: its own index when no groups are attached.
    pub fn group(&self, i: usize) -> usize {
        match &self.groups {
            Some(g) => g.ids[i] as usize,
            None => i,
        }
    }

    /// Whether groups are attached.
    pub fn has_groups(&self) -> bool {
        self.groups.is_some()
    }

    /// The name of group `g` (as returned by [`Dataset::group`]).
    pub fn group_name(&self, g: usize) -> String {
        match &self.groups {
            Some(gr) => gr.names[g].clone(),
            None => format!("sample {g}"),
        }
    }

    /// Site name of sample `i`, if sites are attached.
    pub fn site(&self, i: usize) -> Option<&str> {
        self.sites
            .as_ref()
            .map(|s| s.names[s.ids[i] as usize].as_str())
    }

    /// Whether label maps are attached.
    pub fn has_masks(&self) -> bool {
        self.storage.masks.is_some()
    }

    /// Writes sample `i` as `f32` into `out`, which must hold exactly `sample_len()` values
    /// (an error naming both lengths otherwise, and for an `i` past the end).
    pub fn read(&self, i: usize, out: &mut [f32]) -> Result<()> {
        let per = self.sample_len();
        if out.len() != per {
            return Err(Error::param(
                "out",
                format!("{} values for a sample of {per}", out.len()),
            ));
        }
        let row = *self.rows.get(i).ok_or_else(|| {
            Error::param("i", format!("sample {i} of a data set of {}", self.len()))
        })?;
        match &self.storage.pixels {
            Pixels::U8(v) => {
                for (o, &p) in out.iter_mut().zip(&v[row * per..(row + 1) * per]) {
                    *o = p as f32 / 255.0;
                }
            }
            Pixels::F32(v) => out.copy_from_slice(&v[row * per..(row + 1) * per]),
        }
        Ok(())
    }

    /// The label map of sample `i`, if masks are attached.
    pub fn mask(&self, i: usize) -> Option<&[u8]> {
        let per: usize = self.sample_shape[1..].iter().product();
        let row = self.rows[i];
        self.storage
            .masks
            .as_ref()
            .map(|m| &m[row * per..(row + 1) * per])
    }

    /// The samples of the given classes, relabelled `0..classes.len()` in the order given
    /// (names kept).
    pub fn select_classes(&self, classes: &[usize]) -> Result<Dataset> {
        let mut new_id = vec![usize::MAX; self.n_classes()];
        for (k, &c) in classes.iter().enumerate() {
            if c >= self.n_classes() {
                return Err(Error::param(
                    "classes",
                    format!("class {c} out of range ({} classes)", self.n_classes()),
                ));
            }
            if new_id[c] != usize::MAX {
                return Err(Error::param("classes", format!("class {c} listed twice")));
            }
            new_id[c] = k;
        }
        let keep: Vec<usize> = (0..self.len())
            .filter(|&i| new_id[self.labels[i]] != usize::MAX)
            .collect();
        let mut ds = self.subset(&keep);
        ds.labels = keep.iter().map(|&i| new_id[self.labels[i]]).collect();
        ds.class_names = classes
            .iter()
            .map(|&c| self.class_names[c].clone())
            .collect();
        ds.reindex();
        Ok(ds)
    }

    /// The given samples, classes unchanged (some may end up with no samples).
    pub fn select_samples(&self, samples: &[usize]) -> Result<Dataset> {
        if let Some(&bad) = samples.iter().find(|&&i| i >= self.len()) {
            return Err(Error::param(
                "samples",
                format!("sample {bad} out of range ({} samples)", self.len()),
            ));
        }
        let mut ds = self.subset(samples);
        ds.reindex();
        Ok(ds)
    }

    fn subset(&self, keep: &[usize]) -> Dataset {
        Dataset {
            name: self.name.clone(),
            sample_shape: self.sample_shape.clone(),
            storage: self.storage.clone(),
            rows: keep.iter().map(|&i| self.rows[i]).collect(),
            labels: keep.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
            groups: self.groups.as_ref().map(|g| g.select(keep)),
            sites: self.sites.as_ref().map(|s| s.select(keep)),
            class_index: Vec::new(),
        }
    }

    /// Adds rotated copies as new classes (the Prototypical Networks protocol for
    /// Omniglot): for each quarter-turn count `r` in `turns`, class `c` becomes class
    /// `c * turns.len() + k` where `k` is the position of `r`. Square 2D samples only.
    pub fn with_rotations(&self, turns: &[usize]) -> Result<Dataset> {
        let [ch, h, w] = self.sample_shape[..] else {
            return Err(Error::param(
                "turns",
                format!(
                    "rotations need 2D samples, shape is {:?}",
                    self.sample_shape
                ),
            ));
        };
        if h != w || turns.is_empty() {
            return Err(Error::param(
                "turns",
                "rotations need square samples and at least one turn",
            ));
        }
        let per = ch * h * w;
        let n = self.len() * turns.len();
        let mut labels = Vec::with_capacity(n);
        let mut groups = Vec::with_capacity(n);
        let mut pixels = Vec::with_capacity(n * per);
        let mut buf = vec![0f32; per];
        for i in 0..self.len() {
            self.read(i, &mut buf)?;
            for (k, &r) in turns.iter().enumerate() {
                for plane in buf.chunks(h * w) {
                    pixels.extend(rot90_square(plane, h, r));
                }
                labels.push(self.labels[i] * turns.len() + k);
                groups.push(self.group_name(self.group(i)));
            }
        }
        let names = self
            .class_names
            .iter()
            .flat_map(|c| turns.iter().map(move |r| format!("{c}/rot{}", r * 90)))
            .collect();
        let pixels = match &self.storage.pixels {
            // Keep 8-bit storage 8-bit: the rotated values are the same bytes.
            Pixels::U8(_) => {
                Pixels::U8(pixels.iter().map(|&v| (v * 255.0).round() as u8).collect())
            }
            Pixels::F32(_) => Pixels::F32(pixels),
        };
        let mut ds =
            Self::build(&self.name, &self.sample_shape, pixels, labels)?.with_class_names(names)?;
        if self.groups.is_some() {
            ds = ds.with_groups(groups)?;
        }
        Ok(ds)
    }
}

fn storage_values(s: &Storage) -> usize {
    match &s.pixels {
        Pixels::U8(v) => v.len(),
        Pixels::F32(v) => v.len(),
    }
}

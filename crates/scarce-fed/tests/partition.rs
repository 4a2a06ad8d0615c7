//! Partitions cover every item once, are reproducible, and skew as α says.

use scarce_fed::partition::{by_group, by_site, dirichlet_label_skew, iid, quantity_skew};

fn covers_once(parts: &[Vec<usize>], items: usize) {
    let mut all: Vec<usize> = parts.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..items).collect::<Vec<_>>());
}

/// Mean total-variation distance between each client's label distribution and the whole
/// set's: 0 for IID, up to 1 for one class per client.
fn label_skew(parts: &[Vec<usize>], labels: &[usize], classes: usize) -> f64 {
    let hist = |idx: &mut dyn Iterator<Item = usize>| {
        let mut h = vec![0.0; classes];
        let mut n = 0.0;
        for i in idx {
            h[labels[i]] += 1.0;
            n += 1.0;
        }
        h.iter().map(|v| v / n).collect::<Vec<f64>>()
    };
    let global = hist(&mut (0..labels.len()));
    parts
        .iter()
        .map(|p| {
            let h = hist(&mut p.iter().copied());
            0.5 * h
                .iter()
                .zip(&global)
                .map(|(a, b)| (a - b).abs())
                .sum::<f64>()
        })
        .sum::<f64>()
        / parts.len() as f64
}

#[test]
fn partitions_cover_every_item_once_and_skew_as_alpha_says() {
    let labels: Vec<usize> = (0..3000).map(|i| (i * 7 + i / 13) % 4).collect();
    let parts = iid(3000, 7, 1).unwrap();
    covers_once(&parts, 3000);
    assert!(parts.iter().all(|p| p.len() == 428 || p.len() == 429));
    assert_eq!(parts, iid(3000, 7, 1).unwrap());
    assert_ne!(parts, iid(3000, 7, 2).unwrap());

    let skew = |alpha| {
        let p = dirichlet_label_skew(&labels, 5, alpha, 10, 4).unwrap();
        covers_once(&p, labels.len());
        assert!(p.iter().all(|p| p.len() >= 10));
        label_skew(&p, &labels, 4)
    };
    let (s_iid, s_03, s_100) = (label_skew(&parts, &labels, 4), skew(0.3), skew(100.0));
    println!("label skew (mean TV distance): iid {s_iid:.3}, Dirichlet(100) {s_100:.3}, Dirichlet(0.3) {s_03:.3}");
    assert!(s_03 > 0.3 && s_100 < 0.1 && s_iid < 0.05);
    // An impossible minimum size is an error naming the setting.
    assert!(dirichlet_label_skew(&labels, 5, 0.3, 700, 4).is_err());
    assert!(dirichlet_label_skew(&labels, 5, 0.0, 1, 4).is_err());

    let q = quantity_skew(3000, 6, 0.5, 9).unwrap();
    covers_once(&q, 3000);
    let sizes: Vec<usize> = q.iter().map(Vec::len).collect();
    println!("quantity skew sizes (Dirichlet(0.5)): {sizes:?}");
    assert!(sizes.iter().all(|&s| s >= 1));
    assert!(sizes.iter().max().unwrap() > &(2 * sizes.iter().min().unwrap()));
}

#[test]
fn groups_are_never_split() {
    // 40 patients with 1..=8 images each.
    let patients: Vec<u32> = (0..40u32)
        .flat_map(|p| vec![p; 1 + (p as usize % 8)])
        .collect();
    let parts = by_group(&patients, 4, 5).unwrap();
    covers_once(&parts, patients.len());
    for (a, pa) in parts.iter().enumerate() {
        for pb in &parts[a + 1..] {
            assert!(pa
                .iter()
                .all(|&i| pb.iter().all(|&j| patients[i] != patients[j])));
        }
    }
    let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
    assert!(
        sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 8,
        "{sizes:?}"
    );
    assert!(by_group(&patients, 41, 5).is_err());

    let sites = ["b", "a", "b", "c", "a"];
    let by = by_site(&sites);
    assert_eq!(
        by,
        vec![("a", vec![1, 4]), ("b", vec![0, 2]), ("c", vec![3])]
    );
}

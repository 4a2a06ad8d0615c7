//! The bundled Omniglot npz files: counts, and the 105→28 resize checked pixel by pixel
//! against Pillow's Lanczos output (`shared/data/omniglot/*_28x28.safetensors`, built with
//! `PIL.Image.resize((28, 28), LANCZOS)`; skipped when `../shared` is absent).

use std::path::PathBuf;

use scarce_episodes::omniglot::{Omniglot, OmniglotSet};

fn shared_omniglot() -> Option<PathBuf> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("shared/data/omniglot"))
        .chain(here.ancestors().map(|a| a.join("../shared/data/omniglot")))
        .find(|p| p.is_dir())
}

#[test]
fn counts_and_pillow_resize() {
    let dir = scarce_episodes::data_dir().join("omniglot");
    for (set, chars, alphabets, file) in [
        (
            OmniglotSet::Background,
            964,
            30,
            "omniglot_background_28x28.safetensors",
        ),
        (
            OmniglotSet::Evaluation,
            659,
            20,
            "omniglot_evaluation_28x28.safetensors",
        ),
    ] {
        let o = Omniglot::load(&dir, set, 28).unwrap();
        let ds = &o.dataset;
        assert_eq!(ds.n_classes(), chars);
        assert_eq!(o.alphabets.len(), alphabets);
        assert_eq!(ds.len(), chars * 20);
        assert!((0..chars).all(|c| ds.class_samples(c).len() == 20));
        assert_eq!(ds.sample_shape(), &[1, 28, 28]);
        println!("{set:?}: {chars} characters x 20 drawings, {alphabets} alphabets");

        let Some(shared) = shared_omniglot() else {
            println!("../shared absent: Pillow pixel check skipped");
            continue;
        };
        let bytes = std::fs::read(shared.join(file)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let pil = st.tensor("images").unwrap();
        let ids = |name: &str| -> Vec<i64> {
            st.tensor(name)
                .unwrap()
                .data()
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let (chars_in_set, drawers) = (ids("character_in_set"), ids("drawer"));
        let mut ours = vec![0f32; 784];
        let mut max_diff = 0i32;
        let mut differing = 0usize;
        for (k, img) in pil.data().chunks_exact(784).enumerate() {
            let i = chars_in_set[k] as usize * 20 + drawers[k] as usize;
            ds.read(i, &mut ours).unwrap();
            for (&p, &o) in img.iter().zip(&ours) {
                let d = (p as i32 - (o * 255.0).round() as i32).abs();
                max_diff = max_diff.max(d);
                differing += (d != 0) as usize;
            }
        }
        println!(
            "{set:?}: {} images compared with Pillow LANCZOS: {differing} pixels differ, max |diff| {max_diff}",
            chars_in_set.len()
        );
        assert_eq!(max_diff, 0);
    }
}

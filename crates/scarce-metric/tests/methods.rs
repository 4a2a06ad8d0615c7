//! Every few-shot method: gradients of the trainable heads against f64 finite differences,
//! closed forms where one exists, and each method classifying a well-separated episode.

use candle_core::{DType, Device, Tensor};
use scarce_core::gradcheck::{gradcheck, GradcheckOpts};
use scarce_core::{ops, Params, Stream};
use scarce_metric::{
    BdCspn, FewShotClassifier, LinearProbe, MatchingNet, Metric, ProtoNet, RelationNet, SimpleShot,
    Tim,
};

fn normal(rows: usize, d: usize, seed: u64) -> Tensor {
    Stream::new(seed, "methods")
        .normal_tensor((rows, d), 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap()
}

/// 3 classes, 2 support and 4 queries each, around centres 6 units apart in 5 dimensions.
fn separated() -> (Tensor, Vec<u32>, Tensor, Vec<u32>) {
    let centres = (normal(3, 5, 7) * 6.0).unwrap();
    let pick = |labels: &[u32], seed| {
        let idx = Tensor::new(labels, &Device::Cpu).unwrap();
        (centres.index_select(&idx, 0).unwrap() + (normal(labels.len(), 5, seed) * 0.3).unwrap())
            .unwrap()
    };
    let ys = vec![0, 0, 1, 1, 2, 2];
    let yq = vec![0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2];
    (pick(&ys, 1), ys, pick(&yq, 2), yq)
}

fn methods() -> Vec<Box<dyn FewShotClassifier>> {
    vec![
        Box::new(ProtoNet::euclidean()),
        Box::new(ProtoNet {
            metric: Metric::Cosine {
                init_scale: 10.0,
                learnable: true,
            },
        }),
        Box::new(MatchingNet::default()),
        Box::new(RelationNet {
            embedding_dim: 5,
            hidden: 8,
            seed: 0,
        }),
        Box::new(SimpleShot::default()),
        Box::new(LinearProbe::default()),
        Box::new(BdCspn),
        Box::new(Tim::default()),
    ]
}

#[test]
fn every_method_classifies_a_separated_episode() {
    let (s, ys, q, yq) = separated();
    for m in methods() {
        if m.name().starts_with("relation") {
            continue; // an untrained relation module has no reason to be right
        }
        let head = m.init_head(&Device::Cpu, DType::F64).unwrap();
        let logits = m.logits(&head, &s, &ys, 3, &q).unwrap();
        assert_eq!(logits.dims(), &[12, 3], "{}", m.name());
        let pred: Vec<u32> = logits
            .argmax(1)
            .unwrap()
            .to_dtype(DType::U32)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(pred, yq, "{}", m.name());
    }
}

#[test]
fn trainable_heads_have_exact_gradients() {
    let (s, ys, q, _) = separated();
    let yq = Tensor::new(&[0u32, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2], &Device::Cpu).unwrap();
    let opts = GradcheckOpts {
        eps: 1e-6,
        atol: 1e-7,
        rtol: 1e-5,
    };
    for m in methods().into_iter().take(4) {
        let head = m.init_head(&Device::Cpu, DType::F64).unwrap();
        let names: Vec<String> = head.names().to_vec();
        let mut inputs = vec![(&s * 0.3).unwrap(), (&q * 0.3).unwrap()];
        inputs.extend(head.iter().map(|(_, t)| t.clone()));
        let f = |x: &[Tensor]| {
            let head: Params = names.iter().cloned().zip(x[2..].iter().cloned()).collect();
            ops::cross_entropy(&m.logits(&head, &x[0], &ys, 3, &x[1])?, &yq)
        };
        let r = gradcheck(f, &inputs, opts).unwrap();
        println!(
            "{}: gradcheck ok, max error {:.1e}",
            m.name(),
            r.max_abs_err
        );
    }
}

#[test]
fn closed_forms() {
    let dev = Device::Cpu;
    // Matching: one support per class, the query identical to class 0's support with
    // orthogonal class 1: attention softmax([1, 0]) → log-probabilities.
    let s = Tensor::new(&[[1.0f64, 0.0], [0.0, 1.0]], &dev).unwrap();
    let q = Tensor::new(&[[2.0f64, 0.0]], &dev).unwrap();
    let l = MatchingNet::default()
        .logits(&Params::new(), &s, &[0, 1], 2, &q)
        .unwrap();
    let e = 1f64.exp();
    let want = [(e / (e + 1.0)).ln(), (1.0 / (e + 1.0)).ln()];
    let got = l.to_vec2::<f64>().unwrap()[0].clone();
    assert!(
        (got[0] - want[0]).abs() < 1e-14 && (got[1] - want[1]).abs() < 1e-14,
        "{got:?}"
    );

    // TIM with no steps is the cosine ProtoNet with scale = temperature.
    let (s, ys, q, _) = separated();
    let tim = Tim {
        steps: 0,
        ..Tim::default()
    };
    let cos = ProtoNet {
        metric: Metric::Cosine {
            init_scale: 10.0,
            learnable: false,
        },
    };
    let a = tim.logits(&Params::new(), &s, &ys, 3, &q).unwrap();
    let b = cos.logits(&Params::new(), &s, &ys, 3, &q).unwrap();
    let diff = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(diff < 1e-12, "{diff}");
    let protos = scarce_metric::classifier::prototypes(&s, &ys, 3).unwrap();

    // BD-CSPN with the supports as queries: no shift (equal means), every query predicted
    // right, so each rectified prototype is the exp(cos)-weighted mean of the class's
    // support points counted twice — computed here directly.
    let l = BdCspn.logits(&Params::new(), &s, &ys, 3, &s).unwrap();
    let protos_direct = {
        let mut rows = Vec::new();
        let sv = s.to_vec2::<f64>().unwrap();
        let pv = protos.to_vec2::<f64>().unwrap();
        for (k, proto) in pv.iter().enumerate() {
            let cos = |x: &[f64], p: &[f64]| {
                let dot: f64 = x.iter().zip(p).map(|(a, b)| a * b).sum();
                dot / (x.iter().map(|a| a * a).sum::<f64>().sqrt()
                    * p.iter().map(|a| a * a).sum::<f64>().sqrt())
            };
            let members: Vec<&Vec<f64>> = sv
                .iter()
                .zip(&ys)
                .filter(|(_, &y)| y == k as u32)
                .map(|(x, _)| x)
                .collect();
            let w: Vec<f64> = members.iter().map(|x| cos(x, proto).exp()).collect();
            let total = 2.0 * w.iter().sum::<f64>();
            let row: Vec<f64> = (0..5)
                .map(|j| 2.0 * members.iter().zip(&w).map(|(x, w)| w * x[j]).sum::<f64>() / total)
                .collect();
            rows.push(row);
        }
        Tensor::new(rows, &dev).unwrap()
    };
    let want = scarce_metric::classifier::squared_distances(&s, &protos_direct)
        .unwrap()
        .neg()
        .unwrap();
    let diff = (l - want)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(diff < 1e-10, "{diff}");
}

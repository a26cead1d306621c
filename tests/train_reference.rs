//! The optimizer, the loss and the EMA as emitted in HLO, against ndarray references over several
//! steps on small tensors (f64, so differences are rounding only).

mod common;

use common::{assert_close, lit, module, random, run, shapes_of};
use effnetv2::hlo::{ElementType, Literal, Shape};
use effnetv2::step::ema;
use effnetv2::step::loss::{l2_penalty, smooth_labels, softmax_cross_entropy};
use effnetv2::step::optimizer::{RmsProp, RmsSlots};
use ndarray::{Array1, ArrayD, Axis};

fn to_array(l: &Literal) -> ArrayD<f64> {
    l.to_ndarray::<f64>().unwrap()
}

#[test]
fn rmsprop_matches_the_tf1_update_over_several_steps() {
    let dims = [3usize, 5];
    let opt = RmsProp::default();
    let shape = Shape::array(ElementType::F64, &[3, 5]);
    let m = module(
        "rmsprop",
        &[
            shape.clone(),
            shape.clone(),
            shape.clone(),
            shape,
            Shape::scalar(ElementType::F64),
        ],
        |b, p| {
            let (var, slots) = opt.update(
                b,
                p[0],
                p[1],
                RmsSlots {
                    mean_square: p[2],
                    momentum: p[3],
                },
                p[4],
            )?;
            b.tuple(&[var, slots.mean_square, slots.momentum])
        },
    );
    // TF1 RMSPropOptimizer: ms starts at one, mom at zero.
    let mut var = random(&dims, -1.0f64, 1.0, 1);
    let mut ms = ArrayD::<f64>::ones(ndarray::IxDyn(&dims));
    let mut mom = ArrayD::<f64>::zeros(ndarray::IxDyn(&dims));
    let (mut v_dev, mut ms_dev, mut mom_dev) = (lit(&var), lit(&ms), lit(&mom));
    for step in 0..6u64 {
        let grad = random(&dims, -2.0f64, 2.0, 10 + step);
        let lr = 0.05 * (step + 1) as f64;
        let out = run(
            &m,
            &[v_dev, lit(&grad), ms_dev, mom_dev, Literal::scalar(lr)],
        );
        ms = &ms * opt.decay + &grad.mapv(|g| g * g) * (1.0 - opt.decay);
        mom = &mom * opt.momentum + &(&grad * lr / &ms.mapv(|s| (s + opt.epsilon).sqrt()));
        var = &var - &mom;
        assert_close(
            &format!("var after step {step}"),
            &out[0],
            &var,
            1e-12,
            1e-14,
        );
        assert_close(&format!("ms after step {step}"), &out[1], &ms, 1e-12, 1e-14);
        assert_close(
            &format!("mom after step {step}"),
            &out[2],
            &mom,
            1e-12,
            1e-14,
        );
        (v_dev, ms_dev, mom_dev) = (out[0].clone(), out[1].clone(), out[2].clone());
    }
}

#[test]
fn label_smoothed_cross_entropy_with_weight_decay_matches_the_reference() {
    let (batch, classes) = (4usize, 7usize);
    let logits = random(&[batch, classes], -3.0f64, 3.0, 2);
    // Soft labels as mixup would make them: two classes per row.
    let mut labels = ArrayD::<f64>::zeros(ndarray::IxDyn(&[batch, classes]));
    for i in 0..batch {
        labels[[i, i % classes]] += 0.7;
        labels[[i, (i + 3) % classes]] += 0.3;
    }
    let w1 = random(&[3, 2], -1.0f64, 1.0, 3);
    let w2 = random(&[5], -1.0f64, 1.0, 4);
    let args = [lit(&logits), lit(&labels), lit(&w1), lit(&w2)];
    let m = module("loss", &shapes_of(&args), |b, p| {
        let smoothed = smooth_labels(b, p[1], 0.1)?;
        let ce = softmax_cross_entropy(b, p[0], smoothed)?;
        let l2 = l2_penalty(b, &[p[2], p[3]], 1e-2)?.expect("two variables");
        b.add(ce, l2)
    });
    let got = run(&m, &args)[0].clone();
    let smoothed = labels.mapv(|y| y * 0.9 + 0.1 / classes as f64);
    let mut ce = 0.0;
    for (row, target) in logits.axis_iter(Axis(0)).zip(smoothed.axis_iter(Axis(0))) {
        let max = row.fold(f64::NEG_INFINITY, |m, &x| m.max(x));
        let lse = max + row.mapv(|x| (x - max).exp()).sum().ln();
        ce -= row
            .iter()
            .zip(target.iter())
            .map(|(x, y)| y * (x - lse))
            .sum::<f64>();
    }
    ce /= batch as f64;
    let l2 = 1e-2 * (w1.mapv(|x| x * x).sum() + w2.mapv(|x| x * x).sum()) / 2.0;
    assert_close(
        "loss",
        &got,
        &ndarray::arr0(ce + l2).into_dyn(),
        1e-12,
        1e-14,
    );
}

#[test]
fn ema_follows_the_ramped_decay_over_several_steps() {
    let dims = [4usize];
    let m = module(
        "ema",
        &[
            Shape::array(ElementType::F64, &[4]),
            Shape::array(ElementType::F64, &[4]),
            Shape::scalar(ElementType::F64),
        ],
        |b, p| {
            let decay = ema::decay_in_graph(b, p[2], 0.9999)?;
            ema::update(b, p[0], p[1], decay)
        },
    );
    let mut shadow: Array1<f64> = Array1::from(vec![0.5, -1.0, 2.0, 0.0]);
    let mut dev = lit(&shadow.clone().into_dyn());
    for t in 1..=8u64 {
        let var = random(&dims, -1.0f64, 1.0, 20 + t);
        dev = run(&m, &[dev, lit(&var), Literal::scalar(t as f64)])[0].clone();
        let d = ema::decay_at(0.9999, t as f64);
        shadow =
            &shadow * d + &(var.clone().into_dimensionality::<ndarray::Ix1>().unwrap() * (1.0 - d));
        assert_close(
            &format!("shadow after step {t}"),
            &dev,
            &shadow.clone().into_dyn(),
            1e-12,
            1e-14,
        );
    }
    assert_eq!(to_array(&dev).len(), 4);
}

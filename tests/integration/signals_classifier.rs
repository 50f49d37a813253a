//! The shrinkage-LDA classifier against scikit-learn, and its cross-validation against
//! chance (tests/reference/classifier_reference.py wrote the golden file).

use affectd::signals::classifier::{ShrinkageLda, cross_validate};
use serde_json::Value;

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn coefficients_and_probabilities_match_scikit_learn() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/golden/lda.json"
    );
    let golden: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let x = matrix(&golden["x"]);
    let labels: Vec<String> = golden["y"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let names = (0..x[0].len()).map(|i| format!("f{i}")).collect();
    let model = ShrinkageLda::fit(&x, &labels, names).unwrap();
    assert_eq!(model.classes, ["0", "1", "2"]);
    let worst = |got: &[Vec<f64>], want: &[Vec<f64>]| {
        got.iter()
            .flatten()
            .zip(want.iter().flatten())
            .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
            .fold(0.0, f64::max)
    };
    let coef_err = worst(&model.coef, &matrix(&golden["coef"]));
    let intercept_err = worst(
        std::slice::from_ref(&model.intercept),
        &matrix(&Value::Array(vec![golden["intercept"].clone()])),
    );
    assert!(coef_err < 1e-9, "coef differs by {coef_err:e}");
    assert!(
        intercept_err < 1e-9,
        "intercept differs by {intercept_err:e}"
    );
    let proba: Vec<Vec<f64>> = matrix(&golden["test_x"])
        .iter()
        .map(|t| model.predict_proba(t).unwrap())
        .collect();
    let proba_err = worst(&proba, &matrix(&golden["test_proba"]));
    assert!(proba_err < 1e-9, "probabilities differ by {proba_err:e}");

    // Saved and loaded as JSON, it predicts the same.
    let json = serde_json::to_string(&model).unwrap();
    let loaded: ShrinkageLda = serde_json::from_str(&json).unwrap();
    assert_eq!(loaded, model);
}

/// Deterministic pseudo-random numbers (xorshift) so the test data need no crate.
fn noise(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
}

#[test]
fn cross_validation_separates_signal_from_chance() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let n = 120;
    let mut x = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let class = i * 2 / n; // first half "rest", second half "task", as in a block design
        let shift = if class == 1 { 0.6 } else { 0.0 };
        x.push(
            (0..8)
                .map(|j| noise(&mut state) + if j < 3 { shift } else { 0.0 })
                .collect::<Vec<f64>>(),
        );
        labels.push(if class == 1 { "task" } else { "rest" }.to_string());
    }
    let names: Vec<String> = (0..8).map(|i| format!("f{i}")).collect();
    let cv = cross_validate(&x, &labels, 5, &names).unwrap();
    println!("informative: {cv:?}");
    assert_eq!(cv.chance_level, 0.5);
    assert!(cv.balanced_accuracy > cv.chance_95th_percentile, "{cv:?}");

    // The same features with labels that carry no information stay near chance.
    let shuffled: Vec<String> = (0..n)
        .map(|i| if (i * 7919) % 13 < 6 { "a" } else { "b" }.to_string())
        .collect();
    let noise_only: Vec<Vec<f64>> = (0..n)
        .map(|_| (0..8).map(|_| noise(&mut state)).collect())
        .collect();
    let cv = cross_validate(&noise_only, &shuffled, 5, &names).unwrap();
    println!("uninformative: {cv:?}");
    assert!(cv.balanced_accuracy < cv.chance_95th_percentile, "{cv:?}");
}

#[test]
fn bad_training_data_is_refused() {
    let names = vec!["f".to_string()];
    assert!(ShrinkageLda::fit(&[], &[], names.clone()).is_err());
    let one_class = ShrinkageLda::fit(
        &[vec![1.0], vec![2.0]],
        &["a".into(), "a".into()],
        names.clone(),
    );
    assert!(one_class.unwrap_err().to_string().contains("two classes"));
    let nan = ShrinkageLda::fit(
        &[vec![f64::NAN], vec![2.0]],
        &["a".into(), "b".into()],
        names.clone(),
    );
    assert!(nan.unwrap_err().to_string().contains("non-finite"));
    let few = cross_validate(
        &[vec![1.0], vec![2.0], vec![3.0]],
        &["a".into(), "b".into(), "b".into()],
        5,
        &names,
    );
    assert!(few.unwrap_err().to_string().contains("at least 5 windows"));
}

//! The combined label: the model's label probabilities and the face's measured expression
//! distribution combined as a product of experts (Hinton 2002),
//!
//! `p(label) ∝ p_model(label)^w · p_expression(label)^(1 - w)`,
//!
//! with `w` the model's weight (`llm.model_weight`). The expression distribution is the face
//! pipeline's `combined` one (the FER model and the AU prototypes averaged); it speaks only
//! of its seven labels (angry, disgust, fear, happy, sad, surprise, neutral), so a request
//! whose labels are not all among them gets no combined label. A probability of 0 is
//! floored at 1e-4 so that one expert cannot veto a label alone. The model's own label is
//! never changed: the combination is reported beside it.

use crate::vision::expression::LABELS as EXPRESSION_LABELS;

/// The method's name, reported with every combined label.
pub fn method(weight: f32) -> String {
    format!("poe-v1 w={weight}")
}

const FLOOR: f64 = 1e-4;

/// The combined distribution over `labels` and its most probable label; None when a label
/// is not one of the expression model's, or the lengths disagree.
pub fn combine(
    model: &[f32],
    expression: &[f32; 7],
    labels: &[String],
    weight: f32,
) -> Option<(String, Vec<f32>)> {
    if model.len() != labels.len() || labels.is_empty() {
        return None;
    }
    let measured: Vec<f64> = labels
        .iter()
        .map(|l| {
            EXPRESSION_LABELS
                .iter()
                .position(|e| e.eq_ignore_ascii_case(l))
                .map(|i| expression[i] as f64)
        })
        .collect::<Option<_>>()?;
    let measured_sum: f64 = measured.iter().sum();
    let w = weight.clamp(0.0, 1.0) as f64;
    let log_p: Vec<f64> = model
        .iter()
        .zip(&measured)
        .map(|(&m, &e)| {
            w * (m as f64).max(FLOOR).ln()
                + (1.0 - w) * (e / measured_sum.max(FLOOR)).max(FLOOR).ln()
        })
        .collect();
    let top = log_p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let unnormalised: Vec<f64> = log_p.iter().map(|l| (l - top).exp()).collect();
    let sum: f64 = unnormalised.iter().sum();
    let p: Vec<f32> = unnormalised.iter().map(|v| (v / sum) as f32).collect();
    let best = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b]))?;
    Some((labels[best].clone(), p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        EXPRESSION_LABELS.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_weight_moves_the_combination_between_the_two_experts() {
        // The model says angry; the measured expression says happy.
        let model = [0.7, 0.05, 0.05, 0.1, 0.04, 0.03, 0.03];
        let expression = [0.05, 0.02, 0.02, 0.8, 0.03, 0.03, 0.05];
        let (label, p) = combine(&model, &expression, &labels(), 1.0).unwrap();
        assert_eq!(label, "angry");
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(
            combine(&model, &expression, &labels(), 0.0).unwrap().0,
            "happy"
        );
        // Equal weights: 0.7^.5*0.05^.5 = 0.19 against 0.1^.5*0.8^.5 = 0.28.
        assert_eq!(
            combine(&model, &expression, &labels(), 0.5).unwrap().0,
            "happy"
        );
    }

    #[test]
    fn labels_outside_the_expression_model_get_no_combination() {
        let custom = vec!["happy".to_string(), "bored".to_string()];
        assert!(combine(&[0.5, 0.5], &[1.0 / 7.0; 7], &custom, 0.5).is_none());
        // A subset of the seven, in any case, works and is renormalised.
        let two = vec!["Happy".to_string(), "sad".to_string()];
        let (label, p) =
            combine(&[0.5, 0.5], &[0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1], &two, 0.5).unwrap();
        assert_eq!(label, "Happy");
        assert!(p[0] > p[1]);
    }
}

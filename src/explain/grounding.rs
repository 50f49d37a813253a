//! Evidence grounding: the measurements a prompt carried, each under a key the model can
//! cite (`AU12`, `expr.happy`, `eeg.faa`, `hr.change`), and the check of every citation
//! against them.
//!
//! Recent expression episodes are cited by episode and AU (`ep1.AU12`, up when it rose).
//!
//! A citation is a key and a direction. The directions are `high`/`low` (a level),
//! `present`/`absent` (an action unit's presence), and `up`/`down` (a signed change or
//! asymmetry; `up` and `high` mean the same for those, as `down` and `low` do). A citation
//! is:
//! - **supported** when its key is in the prompt and its direction agrees with the value;
//! - **contradicted** when the value says the opposite;
//! - **unsupported** when the key is not in the prompt, the direction does not apply to the
//!   key, or the value lies between the two thresholds (it says neither).
//!
//! The grounding score of a judgement is supported / cited; a judgement that cites nothing
//! has no score and is reported as ungrounded. The thresholds are the ones the prompt's
//! words use (`prompt::PhysioCues::describe`, the FACS intensity grades), listed below.

use crate::prompt::{FaceCue, PhysioCues};
use crate::vision::expression::LABELS as EXPRESSION_LABELS;

/// The directions a citation may state.
pub const DIRECTIONS: [&str; 6] = ["high", "low", "present", "absent", "up", "down"];

/// What a citation's direction says about a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Supported,
    Unsupported,
    Contradicted,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Unsupported => "unsupported",
            Verdict::Contradicted => "contradicted",
        }
    }
}

/// How a measurement's value is read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reading {
    /// An action unit: intensity 0-5 and presence. `high` >= 2.5 (marked, FACS C), `low`
    /// < 1.0; `present`/`absent` follow the presence flag.
    ActionUnit { intensity: f32, present: bool },
    /// A level with the thresholds above which it is high and below which it is low.
    Level {
        value: f64,
        low_below: f64,
        high_above: f64,
    },
    /// A signed quantity: `up`/`high` above `+threshold`, `down`/`low` below `-threshold`.
    Signed { value: f64, threshold: f64 },
}

/// One measurement a prompt carried, under the key the model may cite.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub key: String,
    value: Reading,
}

impl Measurement {
    /// The measured value (an action unit's intensity).
    pub fn value(&self) -> f64 {
        match self.value {
            Reading::ActionUnit { intensity, .. } => intensity as f64,
            Reading::Level { value, .. } | Reading::Signed { value, .. } => value,
        }
    }

    /// The directions that apply to this measurement: an action unit's presence or level,
    /// a level's height, a signed quantity's sign.
    pub fn directions(&self) -> &'static [&'static str] {
        match self.value {
            Reading::ActionUnit { .. } => &["present", "absent", "high", "low"],
            Reading::Level { .. } => &["high", "low"],
            Reading::Signed { .. } => &["up", "down"],
        }
    }

    /// What `direction` says about this measurement. Near-synonyms are read as such:
    /// `present`/`absent` of a level as `high`/`low`, `high`/`low` of a signed value as
    /// `up`/`down`.
    pub fn check(&self, direction: &str) -> Verdict {
        let direction = match (self.value, direction) {
            (Reading::Level { .. }, "present") => "high",
            (Reading::Level { .. }, "absent") => "low",
            _ => direction,
        };
        let (says_high, says_low) = match self.value {
            Reading::ActionUnit { intensity, present } => match direction {
                "present" => (present, !present),
                "absent" => (!present, present),
                "high" => (intensity >= 2.5, intensity < 1.0),
                "low" => (intensity < 1.0, intensity >= 2.5),
                _ => return Verdict::Unsupported,
            },
            Reading::Level {
                value,
                low_below,
                high_above,
            } => match direction {
                "high" | "up" => (value > high_above, value < low_below),
                "low" | "down" => (value < low_below, value > high_above),
                _ => return Verdict::Unsupported,
            },
            Reading::Signed { value, threshold } => match direction {
                "high" | "up" => (value > threshold, value < -threshold),
                "low" | "down" => (value < -threshold, value > threshold),
                _ => return Verdict::Unsupported,
            },
        };
        match (says_high, says_low) {
            (true, _) => Verdict::Supported,
            (false, true) => Verdict::Contradicted,
            (false, false) => Verdict::Unsupported,
        }
    }
}

/// The measurements of one face, and the physiology every face shares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalogue {
    pub measurements: Vec<Measurement>,
}

impl Catalogue {
    /// What the prompt says of `face` and of the moment's physiology.
    pub fn new(face: &FaceCue, physiology: Option<&PhysioCues>) -> Self {
        let mut m = Vec::new();
        for (number, _, intensity, present) in &face.action_units {
            m.push(Measurement {
                key: format!("AU{number:02}"),
                value: Reading::ActionUnit {
                    intensity: *intensity,
                    present: *present,
                },
            });
        }
        if let Some(p) = face.expression {
            for (label, probability) in EXPRESSION_LABELS.iter().zip(p) {
                m.push(Measurement {
                    key: format!("expr.{label}"),
                    // The expression model's probability: high above 0.4, low below 0.1.
                    value: Reading::Level {
                        value: probability as f64,
                        low_below: 0.1,
                        high_above: 0.4,
                    },
                });
            }
        }
        // An episode's AUs: `ep1.AU12` went up by its rise (corrected peak - start), more
        // than half an intensity step to count.
        for episode in &face.episodes {
            for au in &episode.action_units {
                m.push(Measurement {
                    key: format!("{}.AU{:02}", episode.key, au.number),
                    value: Reading::Signed {
                        value: (au.peak - au.start) as f64,
                        threshold: 0.5,
                    },
                });
            }
        }
        if let Some((valence, arousal)) = face.face_valence_arousal {
            m.push(Measurement {
                key: "face.valence".into(),
                value: Reading::Signed {
                    value: valence as f64,
                    threshold: 0.2,
                },
            });
            m.push(Measurement {
                key: "face.arousal".into(),
                value: Reading::Level {
                    value: arousal as f64,
                    low_below: 0.3,
                    high_above: 0.6,
                },
            });
        }
        if let Some(p) = physiology {
            let mut level = |key: &str, value: Option<f64>, low_below: f64, high_above: f64| {
                if let Some(value) = value {
                    m.push(Measurement {
                        key: key.into(),
                        value: Reading::Level {
                            value,
                            low_below,
                            high_above,
                        },
                    });
                }
            };
            // The prompt's words: beta/alpha above 1.5 "high", below 0.7 "low".
            level("eeg.arousal", p.eeg_arousal_index, 0.7, 1.5);
            // Resting heart rate: below 60 bradycardic, above 90 raised.
            level("hr", p.heart_rate_bpm, 60.0, 90.0);
            // SCRs per minute: none-to-one is low, more than six is high (non-specific
            // SCR frequencies at rest run 1-3 per minute; Boucsein 2012).
            level("eda.scr_rate", p.scr_rate_per_min, 1.0, 6.0);
            // Breaths per minute: 12-20 is the adult resting range.
            level("resp.rate", p.breathing_rate_per_min, 10.0, 20.0);
            // The fused estimate's arousal, read as the face's own is.
            level(
                "fused.arousal",
                p.fused.as_ref().and_then(|f| f.arousal),
                0.3,
                0.6,
            );
            let mut signed = |key: &str, value: Option<f64>, threshold: f64| {
                if let Some(value) = value {
                    m.push(Measurement {
                        key: key.into(),
                        value: Reading::Signed { value, threshold },
                    });
                }
            };
            // Frontal alpha asymmetry beyond +-0.05 ln units (the prompt's words).
            signed("eeg.faa", p.eeg_asymmetry, 0.05);
            // A change of more than 3 bpm from baseline.
            signed("hr.change", p.heart_rate_change_bpm, 3.0);
            // The fused estimate's valence, read as the face's own is.
            signed(
                "fused.valence",
                p.fused.as_ref().and_then(|f| f.valence),
                0.2,
            );
        }
        Self { measurements: m }
    }

    pub fn keys(&self) -> Vec<&str> {
        self.measurements.iter().map(|m| m.key.as_str()).collect()
    }

    /// The keys grouped by the directions that apply to them, for the answer's schema.
    pub fn keys_by_directions(&self) -> Vec<(&'static [&'static str], Vec<String>)> {
        let mut groups: Vec<(&'static [&'static str], Vec<String>)> = Vec::new();
        for m in &self.measurements {
            match groups.iter_mut().find(|(d, _)| *d == m.directions()) {
                Some((_, keys)) => keys.push(m.key.clone()),
                None => groups.push((m.directions(), vec![m.key.clone()])),
            }
        }
        groups
    }

    pub fn get(&self, key: &str) -> Option<&Measurement> {
        self.measurements.iter().find(|m| m.key == key)
    }

    /// Checks one citation.
    pub fn check(&self, key: &str, direction: &str) -> Checked {
        match self.get(key) {
            None => Checked {
                key: key.into(),
                direction: direction.into(),
                value: None,
                verdict: Verdict::Unsupported,
                note: "the prompt carried no such measurement".into(),
            },
            Some(m) => {
                let verdict = m.check(direction);
                Checked {
                    key: key.into(),
                    direction: direction.into(),
                    value: Some(m.value()),
                    verdict,
                    note: match verdict {
                        Verdict::Unsupported if !DIRECTIONS.contains(&direction) => {
                            format!(
                                "{direction:?} is not a direction ({})",
                                DIRECTIONS.join(", ")
                            )
                        }
                        Verdict::Unsupported => format!(
                            "the value {:.3} says neither {direction} nor its opposite",
                            m.value()
                        ),
                        _ => String::new(),
                    },
                }
            }
        }
    }
}

/// A citation, checked.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Checked {
    pub key: String,
    pub direction: String,
    /// The measured value, when the prompt had the key.
    pub value: Option<f64>,
    #[serde(serialize_with = "verdict_name")]
    pub verdict: Verdict,
    /// Why it is not supported, when it is not.
    pub note: String,
}

fn verdict_name<S: serde::Serializer>(v: &Verdict, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.name())
}

/// The share of citations that are supported; None without citations.
pub fn score(checked: &[Checked]) -> Option<f32> {
    (!checked.is_empty()).then(|| {
        checked
            .iter()
            .filter(|c| c.verdict == Verdict::Supported)
            .count() as f32
            / checked.len() as f32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smiling() -> FaceCue {
        FaceCue {
            face_id: 1,
            action_units: vec![
                (4, "brow lowerer", 0.3, false),
                (6, "cheek raiser", 1.8, true),
                (12, "lip corner puller", 3.4, true),
            ],
            expression: Some([0.01, 0.01, 0.02, 0.80, 0.02, 0.04, 0.10]),
            face_valence_arousal: Some((0.7, 0.5)),
            head_pose: None,
            episodes: Vec::new(),
        }
    }

    #[test]
    fn citations_are_checked_against_the_values_the_prompt_carried() {
        let physiology = PhysioCues {
            heart_rate_bpm: Some(72.0),
            heart_rate_change_bpm: Some(8.0),
            eeg_asymmetry: Some(0.01),
            ..Default::default()
        };
        let c = Catalogue::new(&smiling(), Some(&physiology));
        let verdict = |key: &str, direction: &str| c.check(key, direction).verdict;
        assert_eq!(verdict("AU12", "present"), Verdict::Supported);
        assert_eq!(verdict("AU12", "high"), Verdict::Supported);
        assert_eq!(verdict("AU12", "absent"), Verdict::Contradicted);
        assert_eq!(verdict("AU04", "present"), Verdict::Contradicted);
        assert_eq!(verdict("AU04", "low"), Verdict::Supported);
        // 1.8 is neither high (>= 2.5) nor low (< 1).
        assert_eq!(verdict("AU06", "high"), Verdict::Unsupported);
        assert_eq!(verdict("expr.happy", "high"), Verdict::Supported);
        assert_eq!(verdict("expr.angry", "high"), Verdict::Contradicted);
        assert_eq!(verdict("face.valence", "up"), Verdict::Supported);
        assert_eq!(verdict("hr.change", "up"), Verdict::Supported);
        assert_eq!(verdict("hr.change", "down"), Verdict::Contradicted);
        assert_eq!(verdict("hr", "high"), Verdict::Unsupported);
        // Balanced asymmetry supports neither side.
        assert_eq!(verdict("eeg.faa", "up"), Verdict::Unsupported);
        // Not in the prompt: no EDA stream, no AU15 measured.
        let missing = c.check("eda.scr_rate", "high");
        assert_eq!(missing.verdict, Verdict::Unsupported);
        assert!(missing.note.contains("no such measurement"));
        assert_eq!(verdict("AU15", "present"), Verdict::Unsupported);
        // A direction that does not apply.
        assert_eq!(verdict("AU12", "up"), Verdict::Unsupported);
        assert_eq!(verdict("AU12", "sideways"), Verdict::Unsupported);
    }

    #[test]
    fn the_score_is_the_supported_share_and_absent_without_citations() {
        let c = Catalogue::new(&smiling(), None);
        let checked = vec![c.check("AU12", "present"), c.check("AU04", "present")];
        assert_eq!(score(&checked), Some(0.5));
        assert_eq!(score(&[]), None);
        assert!(c.keys().contains(&"AU12") && c.keys().contains(&"expr.neutral"));
        assert!(!c.keys().contains(&"hr"));
    }

    #[test]
    fn recent_episodes_are_citable_by_episode_and_au() {
        use crate::vision::dynamics::{Episode, EpisodeAu, EpisodeEnd};
        let episode = Episode {
            face_id: 1,
            onset: 10.0,
            apex: 10.38,
            offset: Some(11.6),
            action_units: vec![EpisodeAu {
                number: 12,
                start_intensity: 0.4,
                peak_intensity: 3.1,
                peak_time: 10.38,
                held_s: 1.2,
            }],
            apex_expression: Some([0.01, 0.01, 0.02, 0.80, 0.02, 0.04, 0.10]),
            peak_motion: Some(0.1),
            micro_candidate: false,
            end: Some(EpisodeEnd::Returned),
        };
        let face = smiling().with_episodes(std::slice::from_ref(&episode), 12.0);
        assert_eq!(face.episodes.len(), 1);
        let catalogue = Catalogue::new(&face, None);
        assert_eq!(
            catalogue.check("ep1.AU12", "up").verdict,
            Verdict::Supported
        );
        assert_eq!(
            catalogue.check("ep1.AU12", "down").verdict,
            Verdict::Contradicted
        );
        assert_eq!(
            catalogue.check("ep2.AU12", "up").verdict,
            Verdict::Unsupported
        );
        // Another face's episode, one that began after the moment, or one that ended long
        // before it, is not this face's recent past.
        assert!(
            smiling()
                .with_episodes(std::slice::from_ref(&episode), 9.0)
                .episodes
                .is_empty()
        );
        assert!(
            smiling()
                .with_episodes(std::slice::from_ref(&episode), 30.0)
                .episodes
                .is_empty()
        );
        let other = Episode {
            face_id: 2,
            ..episode
        };
        assert!(smiling().with_episodes(&[other], 12.0).episodes.is_empty());
    }
}

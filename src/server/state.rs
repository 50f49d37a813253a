//! What every service shares.

use crate::config::Config;
use crate::models::loaded::ModelSet;
use crate::vision::FaceModels;

pub struct ServerState {
    pub config: Config,
    pub models: ModelSet,
    /// The face networks that loaded (None without a detector).
    pub face_models: Option<FaceModels>,
}

//! What every service shares.

use crate::config::Config;
use crate::models::loaded::ModelSet;

pub struct ServerState {
    pub config: Config,
    pub models: ModelSet,
}

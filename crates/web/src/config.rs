use clap::Args;

/// The web front end's settings; flags or `AGORA_WEB_*` variables.
#[derive(Debug, Clone, Default, Args)]
pub struct WebConfig {
    /// Marks the session cookie `Secure` on every response. Set it when agora is served over
    /// HTTPS by a proxy that does not send `X-Forwarded-Proto: https` (with that header the
    /// cookie is marked anyway).
    #[arg(
        long = "web-secure-cookies",
        env = "AGORA_WEB_SECURE_COOKIES",
        action = clap::ArgAction::Set,
        default_value_t = false
    )]
    pub secure_cookies: bool,
}

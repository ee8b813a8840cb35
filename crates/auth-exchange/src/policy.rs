//! Who may sign in, beyond holding a genuine token: which Firebase sign-in
//! providers, whether the e-mail address must be verified, which tenants.
//! A refusal is a 403 with its own error code: the token is valid, the
//! application just does not accept this kind of sign-in.

use std::collections::BTreeSet;

use auth_events_aws::env::{ConfigError, Vars, parsed_or};

use crate::verify::FirebaseClaims;

/// Firebase's provider id of anonymous sign-in: no person behind it, so it
/// is refused unless `ALLOWED_PROVIDERS` names it.
pub const ANONYMOUS: &str = "anonymous";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignInPolicy {
    /// `ALLOWED_PROVIDERS` (comma-separated `firebase.sign_in_provider`
    /// values); unset means every provider but [`ANONYMOUS`].
    pub allowed_providers: Option<BTreeSet<String>>,
    /// `REQUIRE_VERIFIED_EMAIL` (false): refuse a token whose e-mail is not
    /// verified. A token without an e-mail (phone sign-in) is not affected.
    pub require_verified_email: bool,
    /// `ALLOWED_TENANTS` (comma-separated): Identity Platform tenants whose
    /// tokens are accepted; unset refuses every token that names a tenant.
    pub allowed_tenants: BTreeSet<String>,
}

/// Why a genuine token may still not sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyRefusal {
    ProviderNotAllowed,
    EmailNotVerified,
    TenantNotAllowed,
}

impl PolicyRefusal {
    /// The error code the client sees.
    pub fn code(self) -> &'static str {
        match self {
            PolicyRefusal::ProviderNotAllowed => "provider_not_allowed",
            PolicyRefusal::EmailNotVerified => "email_not_verified",
            PolicyRefusal::TenantNotAllowed => "tenant_not_allowed",
        }
    }

    /// What the client is told: what to do, not which setting said no.
    pub fn message(self) -> &'static str {
        match self {
            PolicyRefusal::ProviderNotAllowed => {
                "This sign-in method is not accepted by this application; sign in another way."
            }
            PolicyRefusal::EmailNotVerified => "Verify your e-mail address, then sign in again.",
            PolicyRefusal::TenantNotAllowed => {
                "Accounts of this tenant cannot sign in to this application."
            }
        }
    }
}

/// A comma-separated list; blank items are refused, since `a,,b` is a typo.
fn list(
    vars: &(impl Vars + ?Sized),
    name: &'static str,
) -> Result<Option<BTreeSet<String>>, ConfigError> {
    let Some(text) = vars.var(name) else {
        return Ok(None);
    };
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    if items.iter().any(|item| item.is_empty()) {
        return Err(ConfigError::Invalid {
            name,
            value: text.clone(),
            reason: "a comma-separated list without empty items (e.g. google.com,password)"
                .to_owned(),
        });
    }
    Ok(Some(items.into_iter().map(str::to_owned).collect()))
}

impl SignInPolicy {
    pub fn from_vars(vars: &(impl Vars + ?Sized)) -> Result<Self, ConfigError> {
        Ok(Self {
            allowed_providers: list(vars, "ALLOWED_PROVIDERS")?,
            require_verified_email: parsed_or(vars, "REQUIRE_VERIFIED_EMAIL", false)?,
            allowed_tenants: list(vars, "ALLOWED_TENANTS")?.unwrap_or_default(),
        })
    }

    pub fn check(&self, claims: &FirebaseClaims) -> Result<(), PolicyRefusal> {
        let firebase = &claims.firebase;
        if let Some(tenant) = &firebase.tenant
            && !self.allowed_tenants.contains(tenant)
        {
            return Err(PolicyRefusal::TenantNotAllowed);
        }
        // Every Firebase ID token names its provider; one that does not is
        // not a sign-in we know how to judge.
        let provider = firebase
            .sign_in_provider
            .as_deref()
            .ok_or(PolicyRefusal::ProviderNotAllowed)?;
        let allowed = match &self.allowed_providers {
            Some(allowed) => allowed.contains(provider),
            None => provider != ANONYMOUS,
        };
        if !allowed {
            return Err(PolicyRefusal::ProviderNotAllowed);
        }
        if self.require_verified_email
            && claims.email.is_some()
            && claims.email_verified != Some(true)
        {
            return Err(PolicyRefusal::EmailNotVerified);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(
        provider: Option<&str>,
        email: Option<&str>,
        verified: Option<bool>,
    ) -> FirebaseClaims {
        let mut claims = FirebaseClaims {
            email: email.map(str::to_owned),
            email_verified: verified,
            ..FirebaseClaims::of("u")
        };
        claims.firebase.sign_in_provider = provider.map(str::to_owned);
        claims
    }

    fn policy(vars: &[(&str, &str)]) -> SignInPolicy {
        SignInPolicy::from_vars(vars).expect("valid")
    }

    #[test]
    fn by_default_every_provider_but_anonymous_signs_in() {
        let default = SignInPolicy::default();
        for provider in ["google.com", "password", "apple.com", "custom", "phone"] {
            assert_eq!(
                default.check(&claims(Some(provider), None, None)),
                Ok(()),
                "{provider}"
            );
        }
        assert_eq!(
            default.check(&claims(Some(ANONYMOUS), None, None)),
            Err(PolicyRefusal::ProviderNotAllowed)
        );
        assert_eq!(
            default.check(&claims(None, None, None)),
            Err(PolicyRefusal::ProviderNotAllowed)
        );
    }

    #[test]
    fn an_allow_list_admits_exactly_its_providers() {
        let only = policy(&[("ALLOWED_PROVIDERS", "google.com, anonymous")]);
        assert_eq!(only.check(&claims(Some("google.com"), None, None)), Ok(()));
        assert_eq!(only.check(&claims(Some("anonymous"), None, None)), Ok(()));
        assert_eq!(
            only.check(&claims(Some("password"), None, None)),
            Err(PolicyRefusal::ProviderNotAllowed)
        );
    }

    #[test]
    fn an_unverified_email_is_refused_only_when_required() {
        let unverified = claims(Some("password"), Some("a@b.co"), Some(false));
        let unknown = claims(Some("password"), Some("a@b.co"), None);
        let verified = claims(Some("password"), Some("a@b.co"), Some(true));
        let no_email = claims(Some("phone"), None, None);
        assert_eq!(SignInPolicy::default().check(&unverified), Ok(()));
        let strict = policy(&[("REQUIRE_VERIFIED_EMAIL", "true")]);
        assert_eq!(
            strict.check(&unverified),
            Err(PolicyRefusal::EmailNotVerified)
        );
        assert_eq!(strict.check(&unknown), Err(PolicyRefusal::EmailNotVerified));
        assert_eq!(strict.check(&verified), Ok(()));
        assert_eq!(strict.check(&no_email), Ok(()));
    }

    #[test]
    fn a_tenant_token_needs_its_tenant_listed() {
        let mut tenant = claims(Some("password"), None, None);
        tenant.firebase.tenant = Some("acme-1a2b".to_owned());
        assert_eq!(
            SignInPolicy::default().check(&tenant),
            Err(PolicyRefusal::TenantNotAllowed)
        );
        let acme = policy(&[("ALLOWED_TENANTS", "acme-1a2b")]);
        assert_eq!(acme.check(&tenant), Ok(()));
    }

    #[test]
    fn a_list_with_an_empty_item_is_refused_naming_the_variable() {
        for name in ["ALLOWED_PROVIDERS", "ALLOWED_TENANTS"] {
            let error =
                SignInPolicy::from_vars(&[(name, "google.com,,password")]).expect_err("empty item");
            assert!(error.to_string().contains(name), "{error}");
        }
        let error =
            SignInPolicy::from_vars(&[("REQUIRE_VERIFIED_EMAIL", "yes")]).expect_err("not a bool");
        assert!(
            error.to_string().contains("REQUIRE_VERIFIED_EMAIL"),
            "{error}"
        );
    }
}

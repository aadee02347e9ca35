//! Enrollment inside the login: a required user without an enrollment, within the grace period,
//! sets it up here. The guidance (QR code in text blocks, the key in groups of four, the otpauth
//! URI) is part of the code prompt itself, because sshd's keyboard-interactive shows info text
//! only together with the next prompt. The QR code is drawn for the kind of terminal
//! `[enrollment] qr` names, without colour escapes (an OpenSSH client prints a prompt's ESC as
//! the text `\033`), or left out; the key and the URI are always there. The enrollment is stored (fsynced) only once a code from
//! the new secret verifies; the recovery codes are then shown once, in a last prompt.

use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_ON};
use pam::conv::Conv;
use twofold_policy::record::{Enrollment, Record};
use twofold_policy::store::StateStore;
use twofold_policy::totp::{self, Secret, Verdict};
use twofold_policy::{Policy, UserName, recovery, time};
use zeroize::Zeroizing;

/// Attempts at the first code before the login is refused (the secret is then discarded).
const ATTEMPTS: u32 = 3;

/// Why enrollment at login did not complete.
pub enum EnrollError {
    /// The conversation failed.
    Conversation(pam::constants::PamResultCode),
    /// No code from the new secret was given.
    NoValidCode,
    /// Someone else enrolled this user meanwhile (e.g. a concurrent login).
    Raced,
    /// Randomness or the store failed.
    Unavailable(String),
}

/// Runs the enrollment conversation; returns a note for the log on success.
pub fn enroll_at_login(
    conv: &Conv<'_>,
    policy: &Policy,
    store: &dyn StateStore,
    user: &UserName,
    deadline: Option<u64>,
) -> Result<String, EnrollError> {
    let secret = Secret::generate().map_err(|e| EnrollError::Unavailable(e.to_string()))?;
    let params = policy.totp.params;
    let issuer = policy.issuer();
    let uri = totp::otpauth_uri(&secret, params, &issuer, user.as_str());
    let key = secret.to_base32_grouped();
    let qr = policy
        .enrollment
        .qr
        .drawing()
        .and_then(|d| twofold_policy::qr::draw(&uri, d));
    let until = deadline
        .map(|d| format!(" (required before {})", time::human(d)))
        .unwrap_or_default();
    // Without a QR code (`qr = "none"`, or a URI too long for one) the key comes first.
    let show = Zeroizing::new(match &qr {
        Some(qr) => format!(
            "Scan this QR code with an authenticator app (Aegis, FreeOTP, Google Authenticator, ...):\n\
             {}\n\
             or enter the key by hand:  ",
            qr.text.as_str()
        ),
        None => String::from(
            "Add the account in an authenticator app (Aegis, FreeOTP, Google Authenticator, ...)\n\
             by entering the key by hand:  ",
        ),
    });
    drop(qr);
    let guidance = Zeroizing::new(format!(
        "Two-factor authentication is required for this account and not set up yet{until}.\n\
         {show}{key}\n\
         (account {user}, issuer {issuer}, {alg}, {digits} digits, {period} s)\n\
         or open this URI:  {uri}\n\n",
        show = show.as_str(),
        key = key.as_str(),
        uri = uri.as_str(),
        alg = params.algorithm,
        digits = params.digits,
        period = params.period,
    ));
    for attempt in 1..=ATTEMPTS {
        let prompt = Zeroizing::new(if attempt == 1 {
            format!(
                "{}Enter the {}-digit code the app shows: ",
                guidance.as_str(),
                params.digits
            )
        } else {
            format!("That code does not match. Try again ({attempt} of {ATTEMPTS}): ")
        });
        let input = crate::flow::ask(conv, PAM_PROMPT_ECHO_ON, &prompt)
            .map_err(EnrollError::Conversation)?;
        let now = time::now();
        let step = match totp::verify(&secret, params, &input, now, policy.totp.window, None) {
            Ok(Verdict::Accepted { step }) => step,
            Ok(_) => continue,
            Err(e) => return Err(EnrollError::Unavailable(e.to_string())),
        };
        let codes = recovery::generate(policy.enrollment.recovery_codes)
            .map_err(|e| EnrollError::Unavailable(e.to_string()))?;
        // Durable before anything is acknowledged; the code just used is the last step of
        // authenticator 1, so it cannot be used again.
        let stored = twofold_policy::store::change(store, user, |state| {
            let record = state
                .record
                .get_or_insert_with(|| Record::new(user.as_str()));
            if record.enrollment.is_some() {
                return Err(EnrollError::Raced);
            }
            record.enrollment = Some(Enrollment::new(&secret, params, now, codes.hashes.clone()));
            state.counters.last_steps = std::collections::BTreeMap::from([(1, step)]);
            state.counters.last_login = Some(now);
            Ok(())
        })
        .map_err(|e| EnrollError::Unavailable(e.to_string()))?;
        stored?;
        let mut shown = Zeroizing::new(String::from(
            "Two-factor authentication is now set up. Your recovery codes, each usable once if you \
             lose your phone (they are shown only this time: store them somewhere safe, offline):\n",
        ));
        for c in &codes.codes {
            shown.push_str("    ");
            shown.push_str(c);
            shown.push('\n');
        }
        // In a prompt, not an info message: sshd's keyboard-interactive would otherwise hold
        // text sent after the last prompt back until a terminal session starts (or drop it).
        shown.push_str("Press Enter once you have stored them: ");
        // The enrollment is stored: if the client went away meanwhile, the user can make new
        // codes with `twofold recovery-codes`.
        let _ = crate::flow::ask(conv, PAM_PROMPT_ECHO_ON, &shown);
        return Ok(format!(
            "enrolled at login, {} recovery codes issued",
            codes.codes.len()
        ));
    }
    let _ = conv.send(
        PAM_ERROR_MSG,
        "No matching code: two-factor authentication was not set up. Check the phone's clock and try again at the next login.",
    );
    Err(EnrollError::NoValidCode)
}

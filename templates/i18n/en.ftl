# The words of the built-in pages in English: the catalogue every other language is compared with, and falls back to.
# A new language is a copy of this file named by its code (de.ftl, fr.ftl, pt-BR.ftl) with every value translated.
# Placeables such as { $source } are filled in by the page; keep their names.

## Every page
language-name = English
language-choice = Language
logo-alt = { $product } logo
back = Back
back-to-sign-in = Back to sign-in
back-to-account = Back to your account
cancel = Cancel
continue = Continue
continue-with = Continue with { $source }
step-up-with = Sign in again with { $source }
sign-in = Sign in
sign-out = Sign out
username = Username
password = Password
code = Code
never = never

## Messages and errors (titles and texts)
message-reference = Reference:
message-password-set-title = Password set
message-password-set = Your new password is set, and every session of the account was signed out. Sign in with the new password.
message-address-confirmed-title = Address confirmed
message-address-confirmed = Thank you: { $email } is confirmed.
error-bad-request-title = Bad request
error-bad-request = The request could not be understood.
error-csrf-title = Form expired
error-csrf = This form is no longer valid (it may have expired or come from another site). Nothing was changed; please go back, reload the page and try again.
error-cross-origin = This request did not come from a page of this site, so nothing was changed.
error-unauthenticated-title = Not signed in
error-unauthenticated = Please sign in first.
error-not-found-title = Not found
error-not-found = There is nothing here.
error-invalid-flow-title = Sign-in expired
error-invalid-flow = This sign-in attempt is no longer valid. Please start again from the sign-in page.
error-sign-in-failed-title = Sign-in failed
error-sign-in-failed = We could not sign you in. Please try again.
error-already-linked-title = Already linked elsewhere
error-already-linked = That sign-in is already linked to another account here, so it was not added. Sign in to that account and remove it there first.
error-not-fresh-title = Please sign in again
error-not-fresh = For your security, changing how you sign in needs a recent sign-in. Sign in again, then retry. Nothing was changed.
error-token-not-allowed-title = Not available to access tokens
error-token-not-allowed = Access tokens are for APIs. Sign in with a browser to manage your account.
error-forbidden-title = Not allowed
error-forbidden = Your account is not in a group that may see this page. Ask an administrator if you need it.
error-not-administrator-title = Not an administrator
error-not-administrator = Only members of an administrators' group can create tokens with the admin scope. No token was created; create one without the admin scope, or ask an administrator.
error-last-identity-title = Cannot remove the last way in
error-last-identity = This is the only way to sign in to your account, so it was not removed. Add another way first.
error-password-not-changed-title = Password not changed
error-sign-in-refused-title = Sign-in refused
error-invalid-input-title = Please check the form
error-invalid-input = Something in the form was not accepted. Please check it and try again.
error-cancelled-title = Sign-in cancelled
error-cancelled = The sign-in was cancelled at the provider. You are not signed in.
error-unavailable-title = Sign-in provider unavailable
error-unavailable = The sign-in provider is not answering right now. Please try again in a moment, or use another way to sign in.
error-throttled-title = Too many attempts
error-throttled = Too many attempts. Please try again in { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
  }.
error-busy-title = Temporarily unavailable
error-busy = We could not answer in time. Please try again in a moment.
error-internal-title = Something went wrong
error-internal = Something went wrong on our side. If it keeps happening, give the reference below to your administrator.
error-password-sign-in-failed = Sign-in failed. Check your username and password and try again.
error-password-too-short = Your password was not changed: the password must be at least { $n } characters long.
error-password-too-long = Your password was not changed: the password must be at most { $n } characters long.
error-password-control-characters = Your password was not changed: the password must not contain control characters.
error-wrong-current-password = Your password was not changed: the current password is not right.
error-no-password = Your password was not changed: this account has no password here.
error-password-rejected = Your password was not changed: { $reason }.
error-wrong-code = That code is not valid. Check your authenticator app and try again.
error-totp-already-set-up = An authenticator is already set up; remove it first.
error-no-totp = No authenticator is set up.
error-passkey-not-registered = The passkey was not registered (it may be registered already). Try again.
error-passkey-refused-code = That passkey was not accepted. Try again, or enter a code.
error-passkey-refused-password = That passkey was not accepted. Try again, or sign in with your password.
error-address-in-use = This address is already another account's address: nothing was changed.
error-invalid-link = This link is not valid: it was used already, has expired, was replaced by a newer one, or the password changed since. Ask for a new link from the sign-in page.
error-token-name = The name must be 1 to 64 characters.
error-token-expiry = The expiry must be between 1 and 365 days.
error-token-scopes = Give one to 16 scopes of lowercase letters, digits, ':', '_', '-', '.'.
error-email-unchanged = That is already your address.
error-email-invalid = Enter an email address such as name@example.org.

## Notices on the account page
notice-linked = The new way to sign in was added.
notice-unlinked = That way to sign in was removed.
notice-revoked = The sessions were signed out.
notice-password = Your password was changed, and your other sessions were signed out.
notice-token-revoked = The token was revoked.
notice-totp-added = Your authenticator is on, and your other sessions were signed out.
notice-totp-removed = Your authenticator was removed, and your other sessions were signed out.
notice-passkey-added = Your passkey was added, and your other sessions were signed out.
notice-passkey-removed = The passkey was removed, and your other sessions were signed out.
notice-email-change-sent = A confirmation link is on its way to the address you entered; nothing changes until it is opened.

## Sign-out (logout.html)
logout-title = Sign out
logout-expired = That sign-out form had expired. Nothing else was changed. Sign out now?

## Password reset (reset.html, reset_password.html)
reset-title = Reset your password
reset-sent = If an account here matches what you typed and has a confirmed email address, a message with a link to choose a new password is on its way there. The link works once, for a short while.
reset-no-message = No message? Check the spelling and your spam folder, or ask your administrator.
reset-intro = Type your username or your email address. If an account matches, we will mail a link to choose a new password to its confirmed address.
reset-login-label = Username or email
reset-send = Send the link
new-password-title = Choose a new password
new-password-intro = After this, every session of the account is signed out and you sign in again with the new password.
new-password-label = New password
new-password-submit = Set the password

## Change of address (email_change_confirm.html)
email-confirm-title = Confirm the new address
email-confirm-question = Make this the address of your account? Password reset links and security notices will go to it from now on.
email-confirm-not-you = If you did not ask for this, close this page: nothing changes.
email-confirm-submit = Confirm the change

## A new access token (token.html)
token-created-title = Token created
token-created-heading = Token “{ $name }” created
token-copy-now = Copy it now: it is shown only once. Send it as
token-scopes-expiry = Scopes: { $scopes } · expires { $expires }

## Linking a new sign-in to an account (link.html)
link-title = Link your account
link-add-heading = Add { $source } to your account?
link-signed-in-as = You are signed in as { $name }.
link-confirm = Confirm to let { $source } sign you in to this account from now on.
link-confirm-with-email = Confirm to let { $source } ({ $email }) sign you in to this account from now on.
link-add = Add { $source }
link-existing-heading = You may already have an account
link-signed-in-with = You signed in with { $source }. An account with this email address already exists here.
link-signed-in-with-email = You signed in with { $source } as { $email }. An account with this email address already exists here.
link-nothing-linked = Nothing has been linked: an email address alone does not open an account.
link-sign-in-first = If the account is yours, sign in to it with the way you usually use; you will then be asked to confirm adding { $source } to it.
link-not-yours = Not yours? You can use { $source } with a separate, new account instead.
link-create-separate = Create a separate account
link-your-account = your account

## Second factor (second_factor.html, totp_enrol.html, totp_secret.html, recovery_codes.html)
second-factor-title = Second step
second-factor-enrol-intro = Your account needs a second factor. Scan this code with an authenticator app, or type the key into it, then enter the six-digit code it shows.
second-factor-step-up = Confirm it is you
second-factor-enter-code = Enter your code
second-factor-intro = Enter the six-digit code from your authenticator app, or one of your recovery codes.
second-factor-or-passkey = Or use a passkey
totp-enrol-title = Set up an authenticator
totp-enrol-intro = Scan this code with an authenticator app, or type the key into it, then enter the six-digit code it shows to turn it on.
totp-enrol-warning = Turning it on signs you out everywhere else and revokes your access tokens: they were made with your password alone. Make new ones afterwards.
totp-turn-on = Turn on
totp-key = Key:
totp-uri = Or add this URI:
recovery-codes-title = Recovery codes
recovery-codes-heading = Your recovery codes
recovery-codes-intro = Keep these somewhere safe: each one signs you in once if you lose your authenticator. They are shown only now; making new ones cancels these.

## Passkeys (passkey.html, passkey_form.html)
passkey-sign-in-title = Sign in with a passkey
passkey-sign-in-intro = Use a passkey saved on this device or on a security key.
passkey-add-title = Add a passkey
passkey-add-intro = Name the passkey (say, the device it lives on), then create it with your device or security key. It can then be used as your second step, or to sign in without a password.
passkey-use = Use a passkey
passkey-create = Create passkey
passkey-name = Name
passkey-default-name = Passkey
passkey-js-unsupported = This browser cannot use passkeys.
passkey-js-waiting = Waiting for your passkey…
passkey-js-failed = The passkey was not used. You can try again.

## The account page (account.html, account_second_factor.html)
account-default-name = Your account
session-unknown-address = an unknown address
session-unknown-browser = unknown browser
account-title = Your account
account-email-unconfirmed = (not confirmed: check your mail for the confirmation link)
account-ways-heading = Ways to sign in
account-since = since { $date }
account-remove = Remove
account-add-way-heading = Add a way to sign in
account-email-heading = Email address
account-email-pending = Waiting for confirmation: { $email } (pending — open the link mailed there; until then your current address stays in use)
account-email-new = New email address
account-email-change = Change email address
account-password-heading = Change password
account-password-current = Current password
account-tokens-heading = Access tokens
account-token-dates = expires { $expires } · last used { $last_used }
account-token-revoke = Revoke
account-token-name = Name
account-token-scopes = Scopes
account-token-days = Expires in days
account-token-create = Create token
account-sessions-heading = Sessions
account-session-this = This session
account-session = Session
account-session-from = from { $ip } — { $browser }
account-session-dates = started { $created }, last seen { $last_seen }
account-sign-out-others = Sign out all other sessions
account-sign-out-everywhere = Sign out everywhere
account-2fa-heading = Two-factor authentication
account-totp-on = An authenticator app is on.
account-totp-remove = Remove authenticator
account-totp-set-up = Set up an authenticator app
account-passkeys-heading = Passkeys
account-passkey-dates = added { $created } · last used { $last_used }
account-passkeys-off = Passkeys are not available on this server.
account-recovery-codes-left = { $count ->
    [one] { $count } recovery code left.
   *[other] { $count } recovery codes left.
  }
account-recovery-codes-new = New recovery codes

## The sign-in page (login.html)
login-remember-me = Remember me on this device
login-forgot-password = Forgot your password?
account-add-source = Add { $source }
account-security-heading = Security
account-no-email = No email address.
account-email-use-another = Use another email address
account-no-tokens = No access tokens. A token lets a script or an API client act as you, with the scopes you give it.
account-token-create-summary = Create a token
account-totp-heading = Authenticator app
login-sign-in-with = Sign in with
login-or = or

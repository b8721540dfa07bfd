# Die Texte der eingebauten Seiten auf Deutsch (eine Übersetzung von en.ftl, mit denselben Schlüsseln).

## Jede Seite
language-name = Deutsch
language-choice = Sprache
logo-alt = Logo von { $product }
back = Zurück
back-to-sign-in = Zurück zur Anmeldung
back-to-account = Zurück zu Ihrem Konto
cancel = Abbrechen
continue = Weiter
continue-with = Weiter mit { $source }
step-up-with = Erneut anmelden mit { $source }
sign-in = Anmelden
sign-out = Abmelden
username = Benutzername
password = Passwort
code = Code
never = nie

## Meldungen und Fehler (Titel und Texte)
message-reference = Referenz:
message-password-set-title = Passwort gesetzt
message-password-set = Ihr neues Passwort ist gesetzt, und alle Sitzungen des Kontos wurden abgemeldet. Melden Sie sich mit dem neuen Passwort an.
message-address-confirmed-title = Adresse bestätigt
message-address-confirmed = Danke: { $email } ist bestätigt.
error-bad-request-title = Ungültige Anfrage
error-bad-request = Die Anfrage konnte nicht verstanden werden.
error-csrf-title = Formular abgelaufen
error-csrf = Dieses Formular ist nicht mehr gültig (es ist vielleicht abgelaufen oder kam von einer anderen Website). Es wurde nichts geändert; bitte gehen Sie zurück, laden Sie die Seite neu und versuchen Sie es noch einmal.
error-cross-origin = Diese Anfrage kam nicht von einer Seite dieser Website; es wurde nichts geändert.
error-unauthenticated-title = Nicht angemeldet
error-unauthenticated = Bitte melden Sie sich zuerst an.
error-not-found-title = Nicht gefunden
error-not-found = Hier gibt es nichts.
error-invalid-flow-title = Anmeldung abgelaufen
error-invalid-flow = Dieser Anmeldeversuch ist nicht mehr gültig. Bitte beginnen Sie noch einmal auf der Anmeldeseite.
error-sign-in-failed-title = Anmeldung fehlgeschlagen
error-sign-in-failed = Wir konnten Sie nicht anmelden. Bitte versuchen Sie es noch einmal.
error-already-linked-title = Bereits anderswo verknüpft
error-already-linked = Diese Anmeldung ist hier bereits mit einem anderen Konto verknüpft und wurde daher nicht hinzugefügt. Melden Sie sich bei jenem Konto an und entfernen Sie sie zuerst dort.
error-not-fresh-title = Bitte melden Sie sich erneut an
error-not-fresh = Zu Ihrer Sicherheit braucht eine Änderung Ihrer Anmeldewege eine frische Anmeldung. Melden Sie sich erneut an und versuchen Sie es dann noch einmal. Es wurde nichts geändert.
error-token-not-allowed-title = Für Zugriffstoken nicht verfügbar
error-token-not-allowed = Zugriffstoken sind für APIs gedacht. Melden Sie sich mit einem Browser an, um Ihr Konto zu verwalten.
error-forbidden-title = Nicht erlaubt
error-forbidden = Ihr Konto gehört keiner Gruppe an, die diese Seite sehen darf. Fragen Sie einen Administrator, wenn Sie sie brauchen.
error-not-administrator-title = Kein Administrator
error-not-administrator = Nur Mitglieder einer Administratorengruppe können Token mit dem Bereich admin erstellen. Es wurde kein Token erstellt; erstellen Sie eines ohne den Bereich admin, oder fragen Sie einen Administrator.
error-last-identity-title = Der letzte Anmeldeweg kann nicht entfernt werden
error-last-identity = Dies ist der einzige Weg, sich bei Ihrem Konto anzumelden, daher wurde er nicht entfernt. Fügen Sie zuerst einen anderen hinzu.
error-password-not-changed-title = Passwort nicht geändert
error-sign-in-refused-title = Anmeldung abgelehnt
error-invalid-input-title = Bitte prüfen Sie das Formular
error-invalid-input = Eine Angabe im Formular wurde nicht angenommen. Bitte prüfen Sie es und versuchen Sie es noch einmal.
error-cancelled-title = Anmeldung abgebrochen
error-cancelled = Die Anmeldung wurde beim Anbieter abgebrochen. Sie sind nicht angemeldet.
error-unavailable-title = Anmeldedienst nicht erreichbar
error-unavailable = Der Anmeldedienst antwortet gerade nicht. Bitte versuchen Sie es gleich noch einmal oder nutzen Sie einen anderen Anmeldeweg.
error-throttled-title = Zu viele Versuche
error-throttled = Zu viele Versuche. Bitte versuchen Sie es in { $minutes ->
    [one] einer Minute
   *[other] { $minutes } Minuten
  } noch einmal.
error-busy-title = Vorübergehend nicht verfügbar
error-busy = Wir konnten nicht rechtzeitig antworten. Bitte versuchen Sie es gleich noch einmal.
error-internal-title = Etwas ist schiefgegangen
error-internal = Bei uns ist etwas schiefgegangen. Wenn es wieder passiert, nennen Sie Ihrem Administrator die Referenz unten.
error-password-sign-in-failed = Anmeldung fehlgeschlagen. Prüfen Sie Benutzername und Passwort und versuchen Sie es noch einmal.
error-password-too-short = Ihr Passwort wurde nicht geändert: Das Passwort muss mindestens { $n } Zeichen lang sein.
error-password-too-long = Ihr Passwort wurde nicht geändert: Das Passwort darf höchstens { $n } Zeichen lang sein.
error-password-control-characters = Ihr Passwort wurde nicht geändert: Das Passwort darf keine Steuerzeichen enthalten.
error-wrong-current-password = Ihr Passwort wurde nicht geändert: Das aktuelle Passwort stimmt nicht.
error-no-password = Ihr Passwort wurde nicht geändert: Dieses Konto hat hier kein Passwort.
error-password-rejected = Ihr Passwort wurde nicht geändert: { $reason }.
error-wrong-code = Dieser Code ist nicht gültig. Prüfen Sie Ihre Authenticator-App und versuchen Sie es noch einmal.
error-totp-already-set-up = Ein Authenticator ist bereits eingerichtet; entfernen Sie ihn zuerst.
error-no-totp = Es ist kein Authenticator eingerichtet.
error-passkey-not-registered = Der Passkey wurde nicht registriert (vielleicht ist er es schon). Versuchen Sie es noch einmal.
error-passkey-refused-code = Dieser Passkey wurde nicht angenommen. Versuchen Sie es noch einmal oder geben Sie einen Code ein.
error-passkey-refused-password = Dieser Passkey wurde nicht angenommen. Versuchen Sie es noch einmal oder melden Sie sich mit Ihrem Passwort an.
error-address-in-use = Diese Adresse gehört bereits zu einem anderen Konto: Es wurde nichts geändert.
error-invalid-link = Dieser Link ist nicht gültig: Er wurde schon benutzt, ist abgelaufen, wurde durch einen neueren ersetzt, oder das Passwort wurde inzwischen geändert. Fordern Sie auf der Anmeldeseite einen neuen Link an.
error-token-name = Der Name muss 1 bis 64 Zeichen lang sein.
error-token-expiry = Die Gültigkeit muss zwischen 1 und 365 Tagen liegen.
error-token-scopes = Geben Sie einen bis 16 Scopes aus Kleinbuchstaben, Ziffern, ':', '_', '-', '.' an.
error-email-unchanged = Das ist bereits Ihre Adresse.
error-email-invalid = Geben Sie eine E-Mail-Adresse wie name@example.org ein.

## Hinweise auf der Kontoseite
notice-linked = Der neue Anmeldeweg wurde hinzugefügt.
notice-unlinked = Dieser Anmeldeweg wurde entfernt.
notice-revoked = Die Sitzungen wurden abgemeldet.
notice-password = Ihr Passwort wurde geändert, und Ihre anderen Sitzungen wurden abgemeldet.
notice-token-revoked = Das Token wurde widerrufen.
notice-totp-added = Ihr Authenticator ist eingeschaltet, und Ihre anderen Sitzungen wurden abgemeldet.
notice-totp-removed = Ihr Authenticator wurde entfernt, und Ihre anderen Sitzungen wurden abgemeldet.
notice-passkey-added = Ihr Passkey wurde hinzugefügt, und Ihre anderen Sitzungen wurden abgemeldet.
notice-passkey-removed = Der Passkey wurde entfernt, und Ihre anderen Sitzungen wurden abgemeldet.
notice-email-change-sent = Ein Bestätigungslink ist an die eingegebene Adresse unterwegs; bis er geöffnet wird, ändert sich nichts.

## Abmelden (logout.html)
logout-title = Abmelden
logout-expired = Dieses Abmeldeformular war abgelaufen. Sonst wurde nichts geändert. Jetzt abmelden?

## Passwort zurücksetzen (reset.html, reset_password.html)
reset-title = Passwort zurücksetzen
reset-sent = Wenn ein Konto hier zu Ihrer Eingabe passt und eine bestätigte E-Mail-Adresse hat, ist eine Nachricht mit einem Link zum Wählen eines neuen Passworts dorthin unterwegs. Der Link funktioniert einmal und nur kurze Zeit.
reset-no-message = Keine Nachricht? Prüfen Sie die Schreibweise und Ihren Spam-Ordner, oder fragen Sie Ihren Administrator.
reset-intro = Geben Sie Ihren Benutzernamen oder Ihre E-Mail-Adresse ein. Wenn ein Konto passt, schicken wir einen Link zum Wählen eines neuen Passworts an seine bestätigte Adresse.
reset-login-label = Benutzername oder E-Mail-Adresse
reset-send = Link senden
new-password-title = Neues Passwort wählen
new-password-intro = Danach werden alle Sitzungen des Kontos abgemeldet, und Sie melden sich mit dem neuen Passwort wieder an.
new-password-label = Neues Passwort
new-password-submit = Passwort setzen

## Adressänderung (email_change_confirm.html)
email-confirm-title = Neue Adresse bestätigen
email-confirm-question = Soll dies die Adresse Ihres Kontos werden? Links zum Zurücksetzen des Passworts und Sicherheitshinweise gehen ab jetzt dorthin.
email-confirm-not-you = Wenn Sie das nicht angefordert haben, schließen Sie diese Seite: Es ändert sich nichts.
email-confirm-submit = Änderung bestätigen

## Ein neues Zugriffstoken (token.html)
token-created-title = Token erstellt
token-created-heading = Token „{ $name }“ erstellt
token-copy-now = Kopieren Sie es jetzt: Es wird nur dieses eine Mal angezeigt. Senden Sie es als
token-scopes-expiry = Scopes: { $scopes } · läuft ab am { $expires }

## Einen neuen Anmeldeweg mit einem Konto verknüpfen (link.html)
link-title = Konto verknüpfen
link-add-heading = { $source } zu Ihrem Konto hinzufügen?
link-signed-in-as = Sie sind als { $name } angemeldet.
link-confirm = Bestätigen Sie, damit { $source } Sie ab jetzt bei diesem Konto anmelden kann.
link-confirm-with-email = Bestätigen Sie, damit { $source } ({ $email }) Sie ab jetzt bei diesem Konto anmelden kann.
link-add = { $source } hinzufügen
link-existing-heading = Sie haben vielleicht schon ein Konto
link-signed-in-with = Sie haben sich mit { $source } angemeldet. Ein Konto mit dieser E-Mail-Adresse gibt es hier bereits.
link-signed-in-with-email = Sie haben sich mit { $source } als { $email } angemeldet. Ein Konto mit dieser E-Mail-Adresse gibt es hier bereits.
link-nothing-linked = Es wurde nichts verknüpft: Eine E-Mail-Adresse allein öffnet kein Konto.
link-sign-in-first = Wenn das Konto Ihnen gehört, melden Sie sich auf dem gewohnten Weg an; danach werden Sie gefragt, ob { $source } hinzugefügt werden soll.
link-not-yours = Nicht Ihres? Sie können { $source } stattdessen mit einem eigenen, neuen Konto nutzen.
link-create-separate = Eigenes Konto anlegen
link-your-account = Ihr Konto

## Zweiter Faktor (second_factor.html, totp_enrol.html, totp_secret.html, recovery_codes.html)
second-factor-title = Zweiter Schritt
second-factor-enrol-intro = Ihr Konto braucht einen zweiten Faktor. Scannen Sie diesen Code mit einer Authenticator-App oder geben Sie den Schlüssel dort ein, und geben Sie dann den sechsstelligen Code ein, den sie anzeigt.
second-factor-step-up = Bestätigen Sie, dass Sie es sind
second-factor-enter-code = Code eingeben
second-factor-intro = Geben Sie den sechsstelligen Code aus Ihrer Authenticator-App oder einen Ihrer Wiederherstellungscodes ein.
second-factor-or-passkey = Oder einen Passkey verwenden
totp-enrol-title = Authenticator einrichten
totp-enrol-intro = Scannen Sie diesen Code mit einer Authenticator-App oder geben Sie den Schlüssel dort ein, und geben Sie dann zum Einschalten den sechsstelligen Code ein, den sie anzeigt.
totp-enrol-warning = Das Einschalten meldet Sie überall sonst ab und widerruft Ihre Zugriffstoken: Sie wurden allein mit Ihrem Passwort erstellt. Erstellen Sie danach neue.
totp-turn-on = Einschalten
totp-key = Schlüssel:
totp-uri = Oder diese URI hinzufügen:
recovery-codes-title = Wiederherstellungscodes
recovery-codes-heading = Ihre Wiederherstellungscodes
recovery-codes-intro = Bewahren Sie diese sicher auf: Jeder meldet Sie einmal an, falls Sie Ihren Authenticator verlieren. Sie werden nur jetzt angezeigt; neue zu erstellen macht diese ungültig.

## Passkeys (passkey.html, passkey_form.html)
passkey-sign-in-title = Mit einem Passkey anmelden
passkey-sign-in-intro = Verwenden Sie einen Passkey, der auf diesem Gerät oder einem Sicherheitsschlüssel gespeichert ist.
passkey-add-title = Passkey hinzufügen
passkey-add-intro = Geben Sie dem Passkey einen Namen (etwa das Gerät, auf dem er liegt), und erstellen Sie ihn dann mit Ihrem Gerät oder Sicherheitsschlüssel. Er kann dann als zweiter Schritt oder zur Anmeldung ohne Passwort dienen.
passkey-use = Passkey verwenden
passkey-create = Passkey erstellen
passkey-name = Name
passkey-default-name = Passkey
passkey-js-unsupported = Dieser Browser kann keine Passkeys verwenden.
passkey-js-waiting = Warte auf Ihren Passkey…
passkey-js-failed = Der Passkey wurde nicht verwendet. Sie können es noch einmal versuchen.

## Die Kontoseite (account.html, account_second_factor.html)
account-default-name = Ihr Konto
session-unknown-address = eine unbekannte Adresse
session-unknown-browser = unbekannter Browser
account-title = Ihr Konto
account-email-unconfirmed = (nicht bestätigt: Den Bestätigungslink finden Sie in Ihrer E-Mail)
account-ways-heading = Anmeldewege
account-since = seit { $date }
account-remove = Entfernen
account-add-way-heading = Anmeldeweg hinzufügen
account-email-heading = E-Mail-Adresse
account-email-pending = Wartet auf Bestätigung: { $email } (öffnen Sie den dorthin gesendeten Link; bis dahin bleibt Ihre jetzige Adresse in Gebrauch)
account-email-new = Neue E-Mail-Adresse
account-email-change = E-Mail-Adresse ändern
account-password-heading = Passwort ändern
account-password-current = Aktuelles Passwort
account-tokens-heading = Zugriffstoken
account-token-dates = läuft ab am { $expires } · zuletzt benutzt { $last_used }
account-token-revoke = Widerrufen
account-token-name = Name
account-token-scopes = Scopes
account-token-days = Gültig für Tage
account-token-create = Token erstellen
account-sessions-heading = Sitzungen
account-session-this = Diese Sitzung
account-session = Sitzung
account-session-from = von { $ip } — { $browser }
account-session-dates = begonnen { $created }, zuletzt gesehen { $last_seen }
account-sign-out-others = Alle anderen Sitzungen abmelden
account-sign-out-everywhere = Überall abmelden
account-2fa-heading = Zwei-Faktor-Authentifizierung
account-totp-on = Eine Authenticator-App ist eingeschaltet.
account-totp-remove = Authenticator entfernen
account-totp-set-up = Authenticator-App einrichten
account-passkeys-heading = Passkeys
account-passkey-dates = hinzugefügt { $created } · zuletzt benutzt { $last_used }
account-passkeys-off = Passkeys sind auf diesem Server nicht verfügbar.
account-recovery-codes-left = { $count ->
    [one] Noch { $count } Wiederherstellungscode.
   *[other] Noch { $count } Wiederherstellungscodes.
  }
account-recovery-codes-new = Neue Wiederherstellungscodes

## Die Anmeldeseite (login.html)
login-remember-me = Auf diesem Gerät angemeldet bleiben
login-forgot-password = Passwort vergessen?
account-add-source = { $source } hinzufügen
account-security-heading = Sicherheit
account-no-email = Keine E-Mail-Adresse.
account-email-use-another = Eine andere E-Mail-Adresse verwenden
account-no-tokens = Keine Zugriffstoken. Ein Token lässt ein Skript oder einen API-Client mit den Scopes, die Sie ihm geben, in Ihrem Namen handeln.
account-token-create-summary = Ein Token erstellen
account-totp-heading = Authenticator-App
login-sign-in-with = Anmelden mit
login-or = oder

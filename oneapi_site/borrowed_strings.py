"""Django's and DRF's own strings whose Chinese says 您, given again here so our catalogue has them.

Our pages address people as 你. Django reads the catalogue in LOCALE_PATHS before those of Django and its apps,
so a msgid marked here (and translated in locale/fragments/h8_ux.po) wins over theirs; tests/site/test_i18n.py
fails when an upgrade brings a new such string.
"""

from django.utils.translation import gettext_noop

BORROWED = (
    gettext_noop('If you are using the <meta name="referrer" content="no-referrer"> tag or including the '
                 '“Referrer-Policy: no-referrer” header, please remove them. The CSRF protection requires the '
                 '“Referer” header to do strict referer checking. If you’re concerned about privacy, use '
                 'alternatives like <a rel="noreferrer" …> for links to third-party sites.'),
    gettext_noop('If you have configured your browser to disable cookies, please re-enable them, at least for this'
                 ' site, or for “same-origin” requests.'),
    gettext_noop('If you have configured your browser to disable “Referer” headers, please re-enable them, at '
                 'least for this site, or for HTTPS connections, or for “same-origin” requests.'),
    gettext_noop('Upload a valid image. The file you uploaded was either not an image or a corrupted image.'),
    gettext_noop('You are seeing this message because this HTTPS site requires a “Referer header” to be sent by '
                 'your web browser, but none was sent. This header is required for security reasons, to ensure '
                 'that your browser is not being hijacked by third parties.'),
    gettext_noop('You are seeing this message because this site requires a CSRF cookie when submitting forms. This'
                 ' cookie is required for security reasons, to ensure that your browser is not being hijacked by '
                 'third parties.'),
    gettext_noop('You are seeing this page because <a '
                 'href="https://docs.djangoproject.com/en/%(version)s/ref/settings/#debug" target="_blank" '
                 'rel="noopener">DEBUG=True</a> is in your settings file and you have not configured any URLs.'),
    gettext_noop('Forgotten your password or username?'),
    gettext_noop('Thanks for spending some quality time with the web site today.'),
    gettext_noop('There’s been an error. It’s been reported to the site administrators via email and should be '
                 'fixed shortly. Thanks for your patience.'),
    gettext_noop('You are authenticated as %(username)s, but are not authorized to access this page. Would you '
                 'like to login to a different account?'),
    gettext_noop('You may edit it again below.'),
    gettext_noop('You do not have permission to perform this action.'),
)

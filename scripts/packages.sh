# Sourced by the scripts: installs the Debian packages faxgate needs to build
# and test, when they are missing.
#
#   libtiff-dev libclang-dev clang pkg-config libjpeg-dev  build spandsp (spandsp-sys, bindgen)
#   libtiff-tools poppler-utils qpdf ghostscript            independent checks of TIFFs and PDFs
#   systemd                                                 systemd-analyze, to verify the unit
#   sip-tester                                              SIPp, for the fax leg's SIP tests and benchmark
#   swaks python3 python3-aiosmtpd                          real SMTP clients and a relay in the mail tests
#   libnet-ssleay-perl libio-socket-ssl-perl                STARTTLS in swaks (the demo)
#   postfix                                                 a real MTA relaying to faxgate; smtp-source/smtp-sink for the mail benchmark
#   tesseract-ocr                                           text recognition: legibility of photographed documents and rendered text
#   python3-skimage                                         a real photograph (skimage/data/coffee.png, CC0) for the photo tests
#   fail2ban                                                fail2ban-regex, to test contrib/fail2ban's filter against faxgate's log
#   faketime                                                libfaketime: the clock moved for the clock-jump tests
#   tzdata                                                  the time zone database: tenants' zones (page header, reports), and their tests
#   prometheus                                              promtool: the /metrics text checked, the example alert rules tested
#   python3-venv                                            a virtual environment for schemathesis (PyPI), which fuzzes the HTTPS API against its OpenAPI document
#   curl                                                    an independent HTTP client: a fax sent by upload to the HTTPS API, as the README shows
FAXGATE_PACKAGES="build-essential pkg-config libtiff-dev libjpeg-dev libclang-dev clang libtiff-tools poppler-utils qpdf ghostscript systemd sip-tester swaks libnet-ssleay-perl libio-socket-ssl-perl python3 python3-aiosmtpd postfix tesseract-ocr python3-skimage fail2ban tzdata faketime prometheus python3-venv curl"

ensure_packages() {
    local missing=()
    for p in $FAXGATE_PACKAGES "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing missing packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    # postfix asks how to configure itself; faxgate only needs its tools.
    echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# schemathesis from PyPI, pinned, in target/schemathesis (a virtual
# environment of Debian's python3): the API test runs it when it is there.
FAXGATE_SCHEMATHESIS_VERSION="4.32.5"
ensure_schemathesis() {
    local venv="${CARGO_TARGET_DIR:-target}/schemathesis"
    if "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$FAXGATE_SCHEMATHESIS_VERSION"; then
        return 0
    fi
    echo "installing schemathesis $FAXGATE_SCHEMATHESIS_VERSION in $venv"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==$FAXGATE_SCHEMATHESIS_VERSION"
}

"""Write Pebble's TLS material and configuration for docker-compose.yml.

Run as `python -m devtools.compose_certs DIR`: DIR receives the Pebble configuration,
its HTTPS certificate for the host name "pebble", and the CA that the certsvc
containers trust through CERTSVC_ACME_CA_BUNDLE.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from devtools.pebble import write_https_material


def main() -> None:
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    certificate, key = write_https_material(folder, folder / "ca.pem", names=("pebble", "localhost"))
    (folder / "pebble-config.json").write_text(json.dumps({"pebble": {
        "listenAddress": "0.0.0.0:14000",
        "managementListenAddress": "0.0.0.0:15000",
        "certificate": str(certificate),
        "privateKey": str(key),
        "httpPort": 80,
        "tlsPort": 443,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }}))
    for path in folder.iterdir():
        path.chmod(0o644)


if __name__ == "__main__":
    main()

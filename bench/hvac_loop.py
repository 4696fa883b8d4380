"""The reference design's approach, for comparison: Python hvac, one
Transit request per value.  Prints "<requests> <seconds> <requests/s>".

usage: /usr/bin/python3 bench/hvac_loop.py encrypt|decrypt KEY N
VAULT_ADDR and VAULT_TOKEN come from the environment.
"""
import base64
import os
import sys
import time

import hvac


def main():
    mode, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = hvac.Client(url=os.environ["VAULT_ADDR"],
                         token=os.environ["VAULT_TOKEN"])
    transit = client.secrets.transit
    ct = transit.encrypt_data(
        name=key, plaintext=base64.b64encode(b"123456789").decode()
    )["data"]["ciphertext"]
    t0 = time.monotonic()
    for i in range(n):
        if mode == "encrypt":
            transit.encrypt_data(
                name=key, plaintext=base64.b64encode(str(i + 1).encode()).decode())
        else:
            transit.decrypt_data(name=key, ciphertext=ct)
    dt = time.monotonic() - t0
    print("%d %.3f %.0f" % (n, dt, n / dt))


if __name__ == "__main__":
    main()

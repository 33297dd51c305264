"""Public keys made with ssh-keygen (OpenSSH 9.2) and their fingerprints, for the SSH tests."""

from __future__ import annotations

# (type, base64, fingerprint as ssh-keygen -l prints it), made with ssh-keygen 9.2
KEYS = {
    "ED25519": (
        "ssh-ed25519",
        "AAAAC3NzaC1lZDI1NTE5AAAAIMZo9iFcAvmgpytTJ2A4vbg1jUVafKi827157doAcG6v",
        "SHA256:qBLGYHCpSrXwWM/Vnw/8mZBWuFHOPUSeHxfpV3ckn44",
    ),
    "ECDSA_256": (
        "ecdsa-sha2-nistp256",
        "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHvTLg+ib6jWK0a80CluhlFs2OIU"
        "1WeUXUO+C/QvUYEPikHMqPYko7oeKuxdMhdJ1+VXCXEvjW/4IySlRSCBNzE=",
        "SHA256:wNXyS+L2/0Zv5k4YllYNFUiQ9/6mDzLMagl7BMG8JWA",
    ),
    "ECDSA_384": (
        "ecdsa-sha2-nistp384",
        "AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBBEljgiv6qczXfEELH2KEqr9458e"
        "tdNHtkJoS+eI1zzqPLYiIXObL+V0f/BzAQPnK1PHqn/Gukg0a8oIXEqM3xz82+se/zoYkn9AwOkjP3kd"
        "3a9mj4YG3+FKWNfKia/jdQ==",
        "SHA256:U4AiUsqmBJv+JyuTefMSY2EzXCzjpK0XB8gikR3cqlQ",
    ),
    "ECDSA_521": (
        "ecdsa-sha2-nistp521",
        "AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAAL+ASqx9URD+G2BcoKd9UM2Ta0"
        "90sDPEjWPsSNlO2WuTdX/ETDAmCQF+BTRA46CAh9OIU/osUm4H0CJYCYUEz6cwGy2VCHBZ3U0/lRI55A"
        "x7zRyyAyCLAea082FUJbN03p/m/mwNcJxo8NmFABAJTrLtfPbja35Rm3Cy92tcoWzns69Q==",
        "SHA256:1OAllW2msNPWymja9RD6AN2YW/nMIa/xDiT99m7zaKg",
    ),
    "RSA_2048": (
        "ssh-rsa",
        "AAAAB3NzaC1yc2EAAAADAQABAAABAQCxJ0yX8g2g88/uxFDituRycZxPmMUJoMigYZhQ28sikjzfwnkf"
        "DqV1xwSlnZF7TcDesluL9L88HQxmrj+JnjDQuuT2uyZLkSapLdIuBAKJPEqWyIi7DsPELEBrHFPdCeER"
        "nmqxIzPzA0LlRxHMSBF8Y4RwWBKMb8kxaDpsBtTxBAeH2pxtu0FJoWdyeftMajbOTakb9W27aEhNd/da"
        "tBDjvt71ynMdJl1Md/G9k81SwxA675k/9OelEVwFCYuvn/ZLEQeNK0g1dlNfntKvoSk9eCIwlwK4Zot3"
        "Kcb2XyDs2Dx1euA3xZjZVHOYeecf+PZNrLrXd0jfucmowFZl1BPt",
        "SHA256:UjvrDyhQuhwJC/PnudSbnUL+aaJsUU3lKEHoy64EjfY",
    ),
    "RSA_1024": (
        "ssh-rsa",
        "AAAAB3NzaC1yc2EAAAADAQABAAAAgQC/sYtgCpcPdbgftkQ+4P3o6l2CvDW4haDEItUlI6JsUvKiuvmf"
        "uTI8bVMvwUlOflVwLigVe6ve0psC3yMajAMYwHZPPOQsE8RffVik6/wrIgN0OCFxHfy3npQl6EDbcRyb"
        "IZEiyBAu9Pr7AVaui7vI54b6IBVHksv3vUfsda3Zrw==",
        "SHA256:gpSkfZ/Y+bPGEpPzwnSt1FOgsg9dmVFDfLzHi4jEhgY",
    ),
    "DSA": (
        "ssh-dss",
        "AAAAB3NzaC1kc3MAAACBAJAZgm2sEWm+H1Iyjt85+82qsinMDFSKKUEKuGFi4A9rILCqsiBqBxCEdBfH"
        "lZkbndHzrSVCHCSV9L6rRSOmc1cAoGGE9fgnMZn2cZcxqQPubGhx3DlRZMvdVU3vbv3zouptBahEEQ9B"
        "CTCHzdhvIMP7k3dwh8ZSiUIyKk/ZPEDhAAAAFQCV03v72nokoQ9ZkruZCWskym2DqQAAAIAHCBZw0DuD"
        "Ckasyq6KoEVBPR9xnFTIzO6f6+WYbsaAGp0TgZt/NgB/tVyycLdCaU41gH0g1WuTimk9QabHWc3hpeF3"
        "JVGyqMqAU6lp7Zesz+4h4kzQWu6wubXNC3zhAAM02xbkNqm8hMh6kRwjWCGMCUUBvPFsYnyd9J7mnnNo"
        "sQAAAIAR3X846SXxCwe+yFAnhJdBVg6Ey6LGGRrHA1iZKHD+EJrLswf713SzCwbvUWwYcE4c927XNgJy"
        "XyM36fqNO9/qX0x6OL2U/bykBiOyw/TJyNp02OzySWaaFspUKLY9LBUAOBVoVTTxhizIszR7FRSVjv5K"
        "IO6UBnKkXIRiJMAQVA==",
        "SHA256:TdQwLBZajzHsqpPPikStVllCOVTkAVSTGBi9y2Y88Ds",
    ),
    "SK_ED25519": (
        "sk-ssh-ed25519@openssh.com",
        "AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIMZo9iFcAvmgpytTJ2A4vbg1jUVafKi82715"
        "7doAcG6vAAAABHNzaDo=",
        "SHA256:gXzM1gRRKadFwLL0dVL1gVtFJpF4cRsPpbJTtWvXVc4",
    ),
    "SK_ECDSA": (
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAyNTYAAABBBHvTLg+i"
        "b6jWK0a80CluhlFs2OIU1WeUXUO+C/QvUYEPikHMqPYko7oeKuxdMhdJ1+VXCXEvjW/4IySlRSCBNzEA"
        "AAAEc3NoOg==",
        "SHA256:5MsBMxbtFleNlDCewveXNn8XXkyIIbDstbxTG8GlXSk",
    ),
}


def line(name: str, comment: str = "") -> str:
    """The ``.pub`` line of fixture key ``name``."""
    key_type, data, _ = KEYS[name]
    return f"{key_type} {data}" + (f" {comment}" if comment else "")


def fingerprint(name: str) -> str:
    return KEYS[name][2]

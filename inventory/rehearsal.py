"""The stand-in VPS of the tests and ``make rehearse`` (group ``rehearsal``).

Its address and key come from the environment, set by whoever started the stand-in sshd:
``HANDLED_VPS_HOST``, ``HANDLED_VPS_PORT``, ``HANDLED_VPS_USER``, ``HANDLED_VPS_KEY`` and
``HANDLED_VPS_KNOWN_HOSTS`` (see ``standins.sshd.SshHost``).
"""

import os

rehearsal = [
    (
        os.environ.get("HANDLED_VPS_NAME", "rehearsal-vps"),
        {
            "ssh_hostname": os.environ.get("HANDLED_VPS_HOST", "127.0.0.1"),
            "ssh_port": int(os.environ.get("HANDLED_VPS_PORT", "22")),
            "ssh_user": os.environ.get("HANDLED_VPS_USER", "handled-deploy"),
            "ssh_key": os.environ.get("HANDLED_VPS_KEY"),
            "ssh_known_hosts_file": os.environ.get("HANDLED_VPS_KNOWN_HOSTS"),
            "ssh_strict_host_key_checking": "yes",
            "ssh_allow_agent": False,
            "ssh_look_for_keys": False,
        },
    ),
]

"""A scripted SSH client for the sshd tests (paramiko).

Usage: ssh_client.py PORT USER, with a JSON object on stdin:
  password  answer to "Password:" prompts
  code      answer to "Verification code:" prompts
  key       path of a private key: public-key authentication first
  methods   "kbdint" (default), "publickey", or "publickey,kbdint"
  command   run once logged in
Enrollment prompts (an otpauth URI with secret=...) are answered with oathtool's code for that
secret, and the "Press Enter" prompt with an empty line. Prints a JSON object: ok, error,
prompts (every prompt seen), secret (if an enrollment prompt was seen), stdout, exit.
"""

import json
import re
import socket
import subprocess
import sys

import paramiko


def main():
    port, user = int(sys.argv[1]), sys.argv[2]
    cfg = json.load(sys.stdin)
    result = {"ok": False, "error": None, "prompts": [], "secret": None}

    def handler(title, instructions, prompts):
        answers = []
        for text, echo in prompts:
            result["prompts"].append(
                {"title": title, "instructions": instructions, "prompt": text, "echo": echo}
            )
            enrol = re.search(r"secret=([A-Z2-7]+)", text)
            if enrol:
                result["secret"] = enrol.group(1)
                code = subprocess.run(
                    ["oathtool", "--totp", "--base32", enrol.group(1)],
                    capture_output=True, text=True, check=True,
                ).stdout.strip()
                answers.append(code)
            elif "Password" in text:
                answers.append(cfg.get("password", ""))
            elif "Verification code" in text:
                answers.append(cfg.get("code", ""))
            else:
                answers.append("")
        return answers

    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=20)
        methods = cfg.get("methods", "kbdint").split(",")
        for method in methods:
            if method == "publickey":
                key = paramiko.Ed25519Key.from_private_key_file(cfg["key"])
                transport.auth_publickey(user, key)
            else:
                transport.auth_interactive(user, handler)
        result["ok"] = transport.is_authenticated()
        if result["ok"] and cfg.get("command"):
            chan = transport.open_session(timeout=20)
            chan.exec_command(cfg["command"])
            out = b""
            while True:
                data = chan.recv(65536)
                if not data:
                    break
                out += data
            result["exit"] = chan.recv_exit_status()
            result["stdout"] = out.decode("utf-8", "replace")
    except (paramiko.SSHException, OSError) as e:
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        transport.close()
    json.dump(result, sys.stdout)


main()

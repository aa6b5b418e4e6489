"""Stand-ins for the macOS commands the nix-darwin activation runs, for nix/tests/activation.py.

`standins.py NAME ARGS...` plays NAME: codesign, csrutil, security, plutil, launchctl, sw_vers,
tccutil, and `agent-guard` (the package's binary: AMFI's verdict at exec, then the real
binary). Each call is appended to $STANDIN_STATE/calls.jsonl. macOS's state lives in
$STANDIN_STATE: `sip` (enabled, disabled or custom), `identities.json` (the codesigning
identities in the keychain), `signatures.json` (what codesign signed, by inode: a real
signature lives inside the file, so it survives a rename and not a change of content),
`jobs.json` (the launchd jobs loaded) and `spawns.jsonl` (each time launchd started a job, with
AMFI's verdict). Paths inside a LaunchDaemon plist are read under $STANDIN_ROOT.

They behave as the real commands do in what the module relies on, including the rule that
matters most: with SIP on, AMFI kills at exec any code that claims the Endpoint Security
entitlement unless it is signed by a certificate whose provisioning profile, embedded in its
bundle, grants the entitlement to the App ID and team the signature claims.
"""

import hashlib
import json
import os
import plistlib
import sys

STATE = os.environ["STANDIN_STATE"]
ROOT = os.environ.get("STANDIN_ROOT", "/")
ES = "com.apple.developer.endpoint-security.client"
APP_ID = "com.apple.application-identifier"
TEAM_ID = "com.apple.developer.team-identifier"
# A provisioning profile is a CMS message around a plist; the stand-in's profiles are this
# header and the plist, which only `security cms -D` (and AMFI) unwrap.
CMS_HEADER = b"STANDIN-CMS-SIGNED-DATA\n"


def state_path(name):
    return os.path.join(STATE, name)


def load(name, default):
    try:
        with open(state_path(name)) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def save(name, value):
    tmp = state_path(name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
    os.replace(tmp, state_path(name))


def append(name, record):
    with open(state_path(name), "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def die(message, code=1):
    print(message, file=sys.stderr)
    sys.exit(code)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def inode(path):
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def decode_profile(data):
    if not data.startswith(CMS_HEADER):
        return None
    try:
        return plistlib.loads(data[len(CMS_HEADER) :])
    except Exception:
        return None


def identity_team(identity):
    if identity.endswith(")") and "(" in identity:
        return identity[identity.rindex("(") + 1 : -1]
    return None


# --- codesign ------------------------------------------------------------------------------


def bundle_parts(bundle):
    """(main executable, Info.plist, embedded profile or None) of an app bundle."""
    info_path = os.path.join(bundle, "Contents", "Info.plist")
    try:
        with open(info_path, "rb") as f:
            info = plistlib.load(f)
    except Exception:
        die(f"{bundle}: bundle format unrecognized, invalid, or unsuitable")
    exe = os.path.join(bundle, "Contents", "MacOS", info.get("CFBundleExecutable", ""))
    if not os.path.isfile(exe):
        die(f"{bundle}: code object is not signed at all (no main executable)")
    profile = os.path.join(bundle, "Contents", "embedded.provisionprofile")
    return exe, info_path, profile if os.path.exists(profile) else None


def seal(target):
    """What a signature covers: the hashes of the files it seals."""
    if os.path.isdir(target):
        exe, info, profile = bundle_parts(target)
        sealed = {"exe": sha256(exe), "Info.plist": sha256(info)}
        if profile:
            sealed["embedded.provisionprofile"] = sha256(profile)
        return sealed
    return {"exe": sha256(target)}


CODESIGN_ALIASES = {"-s": "--sign", "-i": "--identifier", "-o": "--options"}
CODESIGN_VALUED = {"--sign", "--identifier", "--entitlements", "--options"}


def codesign(args):
    if "--verify" in args or "-v" in args:
        target = args[-1]
        sig = load("signatures.json", {}).get(inode(target)) if os.path.exists(target) else None
        if sig is None or sig.get("bundle") and not os.path.isdir(target):
            die(f"{target}: code object is not signed at all")
        if seal(target) != sig["sealed"]:
            die(f"{target}: a sealed resource is missing or invalid")
        return
    if "-d" in args or "--display" in args:
        target = args[-1]
        sig = load("signatures.json", {}).get(inode(target))
        if sig is None:
            die(f"{target}: code object is not signed at all")
        print(f"Identifier={sig['identifier']}\nAuthority={sig['identity']}")
        sys.stdout.buffer.write(plistlib.dumps(sig["entitlements"]))
        return
    opts, target = {}, args[-1]
    i = 0
    while i < len(args) - 1:
        a = CODESIGN_ALIASES.get(args[i], args[i])
        if a in CODESIGN_VALUED:
            opts[a] = args[i + 1]
            i += 2
        else:
            opts[a] = True
            i += 1
    identity = opts.get("--sign")
    if identity is None:
        die("codesign: no operation given (the stand-in knows --sign, --verify, -d)")
    if identity != "-" and identity not in load("identities.json", []):
        die(f"{identity}: no identity found")
    entitlements = {}
    if "--entitlements" in opts:
        try:
            with open(opts["--entitlements"], "rb") as f:
                entitlements = plistlib.load(f)
        except Exception as e:
            die(f"{opts['--entitlements']}: invalid entitlements plist ({e})")
    signatures = load("signatures.json", {})
    if inode(target) in signatures and "--force" not in opts:
        die(f"{target}: is already signed")
    record = {
        "identity": identity,
        "identifier": opts.get("--identifier"),
        "entitlements": entitlements,
        "runtime": opts.get("--options") == "runtime",
        "bundle": os.path.isdir(target),
        "sealed": seal(target),
    }
    if record["bundle"]:
        exe, info, profile = bundle_parts(target)
        with open(info, "rb") as f:
            record["identifier"] = record["identifier"] or plistlib.load(f).get("CFBundleIdentifier")
        if profile:
            with open(profile, "rb") as f:
                record["profile"] = decode_profile(f.read())
            if record["profile"] is None:
                die(f"{profile}: the embedded provisioning profile is not a CMS message")
        signatures[inode(exe)] = record
    signatures[inode(target)] = record
    save("signatures.json", signatures)


# --- AMFI, at exec ---------------------------------------------------------------------------


def amfi_verdict(exe):
    """None if macOS lets `exe` run, else why AMFI kills it."""
    sig = load("signatures.json", {}).get(inode(exe))
    if sig is None:
        return None  # only the linker's ad hoc signature, no entitlements: runs
    if sig["sealed"]["exe"] != sha256(exe):
        return "the code signature is invalid (the executable changed after signing)"
    ents = sig["entitlements"]
    if not ents.get(ES) or load_sip() != "enabled":
        return None
    if sig["identity"] == "-":
        return "ad hoc code claims the restricted entitlement " + ES
    profile = sig.get("profile")
    if not profile:
        return "no provisioning profile authorizes the restricted entitlement " + ES
    granted = profile.get("Entitlements", {})
    team = (profile.get("TeamIdentifier") or [None])[0]
    if not granted.get(ES):
        return "the embedded profile does not grant " + ES
    if ents.get(TEAM_ID) != team:
        return f"the signature claims team {ents.get(TEAM_ID)!r}, the profile grants team {team!r}"
    wanted = ents.get(APP_ID)
    allowed = granted.get(APP_ID, "")
    if wanted is None or not (wanted == allowed or allowed.endswith(".*") and wanted.startswith(allowed[:-1])):
        return f"the signature claims the App ID {wanted!r}, the profile is for {allowed!r}"
    if identity_team(sig["identity"]) not in (None, team):
        return "the signing certificate is not the profile's team's"
    return None


def agent_guard(args):
    exe = os.path.realpath(args[0])
    append("calls.jsonl", {"cmd": "agent-guard", "exe": exe, "args": args[1:]})
    verdict = amfi_verdict(exe)
    if verdict:
        print("Killed: 9", file=sys.stderr)
        append("amfi.jsonl", {"exe": exe, "killed": verdict})
        sys.exit(137)
    real = os.environ["STANDIN_AGENT_GUARD"]
    os.execv(real, [real] + args[1:])


# --- csrutil, sw_vers, tccutil -----------------------------------------------------------------


def load_sip():
    try:
        with open(state_path("sip")) as f:
            return f.read().strip()
    except FileNotFoundError:
        return "enabled"


def csrutil(args):
    if args != ["status"]:
        die("csrutil: the stand-in knows only `status`")
    sip = load_sip()
    if sip == "custom":
        print("System Integrity Protection status: unknown (Custom Configuration).\n")
        print("Configuration:\n\tApple Internal: disabled\n\tKext Signing: disabled")
        print("\tFilesystem Protections: enabled\n\tDebugging Restrictions: enabled")
    else:
        print(f"System Integrity Protection status: {sip}.")


def sw_vers(args):
    print("15.5" if args == ["-productVersion"] else "ProductName:\t\tmacOS\nProductVersion:\t\t15.5")


# --- security cms -D, plutil -extract --------------------------------------------------------


def security(args):
    if args[:2] != ["cms", "-D"] or "-i" not in args:
        die("security: the stand-in knows only `cms -D -i FILE [-o FILE]`")
    with open(args[args.index("-i") + 1], "rb") as f:
        data = f.read()
    if decode_profile(data) is None:
        die("security: failed to decode message")
    plist = data[len(CMS_HEADER) :]
    if "-o" in args:
        with open(args[args.index("-o") + 1], "wb") as f:
            f.write(plist)
    else:
        sys.stdout.buffer.write(plist)


def plutil(args):
    if len(args) < 4 or args[0] != "-extract":
        die("plutil: the stand-in knows only `-extract KEYPATH FORMAT [-o OUT] FILE`")
    keypath, fmt, path = args[1], args[2], args[-1]
    try:
        with open(path, "rb") as f:
            value = plistlib.load(f)
    except Exception:
        die(f"{path}: Property List error: invalid data")
    for key in keypath.split("."):
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            die(f"{path}: Could not extract value, error: No value at that key path or invalid key path: {keypath}")
    if fmt == "json":
        out = json.dumps(value).encode()
    elif fmt == "raw" and not isinstance(value, (dict, list)):
        out = str(value).lower().encode() if isinstance(value, bool) else str(value).encode()
    else:
        die(f"plutil: the stand-in knows the formats json and raw (not {fmt})")
    target = args[args.index("-o") + 1] if "-o" in args else "-"
    if target == "-":
        sys.stdout.buffer.write(out + b"\n")
    else:
        with open(target, "wb") as f:
            f.write(out)


# --- launchctl ---------------------------------------------------------------------------------


def unrooted(path):
    """The path as the Mac would spell it, for a path under the stand-in root."""
    return "/" + os.path.relpath(path, ROOT)


def spawn(label, jobs):
    """launchd starting a job: the executable AMFI lets run, or the kill it records."""
    with open(os.path.join(ROOT, jobs[label]["path"].lstrip("/")), "rb") as f:
        plist = plistlib.load(f)
    program = plist["ProgramArguments"][0]
    exe = os.path.join(ROOT, program.lstrip("/"))
    if not os.path.isfile(exe):
        verdict = f"{program} does not exist (xpcproxy exits 78)"
    else:
        verdict = amfi_verdict(exe)
    jobs[label]["running"] = verdict is None
    append("spawns.jsonl", {"label": label, "program": program, "killed": verdict})


def launchctl(args):
    """print, load, unload, kickstart [-k] of system jobs; a started job runs until restarted."""
    jobs = load("jobs.json", {})
    sub = args[0] if args else ""
    if sub in ("print", "kickstart"):
        label = args[-1].split("/", 1)[1]
        if label not in jobs:
            die(f"Could not find service \"{label}\" in domain for system", 113)
        if sub == "print":
            print(f"system/{label} = {{\n\tpath = {jobs[label]['path']}\n}}")
        elif "-k" in args or not jobs[label]["running"]:
            spawn(label, jobs)
    elif sub == "load":
        with open(args[-1], "rb") as f:
            label = plistlib.load(f)["Label"]
        jobs[label] = {"path": unrooted(args[-1]), "running": False}
        spawn(label, jobs)
    elif sub == "unload":
        jobs = {label: job for label, job in jobs.items() if job["path"] != unrooted(args[-1])}
    elif sub == "managername":
        print("Aqua")
    else:
        die(f"launchctl: the stand-in does not know `{sub}`")
    save("jobs.json", jobs)


def main():
    name, args = sys.argv[1], sys.argv[2:]
    if name != "agent-guard":
        append("calls.jsonl", {"cmd": name, "args": args})
    commands = {
        "codesign": codesign,
        "csrutil": csrutil,
        "sw_vers": sw_vers,
        "tccutil": lambda args: None,
        "security": security,
        "plutil": plutil,
        "launchctl": launchctl,
        "agent-guard": agent_guard,
    }
    commands[name](args)


if __name__ == "__main__":
    main()

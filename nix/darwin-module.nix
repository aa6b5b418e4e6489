# nix-darwin module: `services.agent-guard`.
#
# What it does, in activation order (nix-darwin runs `extraActivation` before `etc` and
# `launchd`, so the binary and policy are in place before launchd starts the daemon):
# 1. installs the binary out of the read-only store to a fixed path (Full Disk Access and the
#    PPPC profile name a path and a signing identity, not a store path), and codesigns it with
#    the Endpoint Security entitlement; any failure stops the activation with a message;
# 2. writes /etc/agent-guard/policy.json as a real root-owned 0644 file, replaced atomically and
#    checked with `agent-guard policy check` first. (Not `environment.etc`: nix-darwin's etc
#    entries have no mode and are symlinks into /etc/static, which swap underneath the file
#    watcher without an event in /etc/agent-guard, so hot reload would never fire.)
# 3. declares the LaunchDaemon com.agent-guard.daemon (KeepAlive, RunAtLoad, logs in
#    /var/log/agent-guard/).
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    types
    ;
  cfg = config.services.agent-guard;

  label = "com.agent-guard.daemon";
  logDir = "/var/log/agent-guard";
  stateDir = "/var/db/agent-guard";
  policyPath = "/etc/agent-guard/policy.json";
  bundleDir = "/Library/Application Support/agent-guard/AgentGuard.app";
  # A provisioning profile can only be embedded in a bundle; a bare binary is for ad hoc
  # signatures on Macs with SIP disabled.
  installPath =
    if cfg.provisioningProfile == null then
      "/usr/local/bin/agent-guard"
    else
      "${bundleDir}/Contents/MacOS/agent-guard";

  nullableList =
    elemType: description:
    mkOption {
      type = types.nullOr (types.listOf elemType);
      default = null;
      description = ''
        ${description}
        `null` leaves the key out of the policy, so the embedded default applies; `[ ]` means none.
      '';
    };

  # Absent (null) options are left out so the daemon's embedded default fills them in.
  policy =
    lib.filterAttrs (_: v: v != null) {
      mode = cfg.mode;
      fail_mode = cfg.failMode;
      ai_agent_patterns = cfg.agentPatterns;
      protected_zones = cfg.protectedZones;
      readonly_zones = cfg.readonlyZones;
      secret_zones = cfg.secretZones;
      temporary_overrides = cfg.temporaryOverrides;
      trusted_tools = cfg.trustedTools;
      exec_rules = cfg.execRules;
    }
    // cfg.extraPolicy;

  policyFile = pkgs.writeText "agent-guard-policy.json" (builtins.toJSON policy);

  infoPlist = pkgs.writeText "agent-guard-Info.plist" ''
    <?xml version="1.0" encoding="UTF-8"?>
    <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
    <plist version="1.0">
    <dict>
      <key>CFBundleIdentifier</key><string>${label}</string>
      <key>CFBundleExecutable</key><string>agent-guard</string>
      <key>CFBundleName</key><string>agent-guard</string>
      <key>CFBundlePackageType</key><string>APPL</string>
      <key>CFBundleVersion</key><string>${cfg.package.version or "0"}</string>
      <key>LSUIElement</key><true/>
    </dict>
    </plist>
  '';

  entitlements = ../entitlements/es.entitlements;

  fail = msg: ''
    printf >&2 '\e[1;31magent-guard: %s\e[0m\n' ${lib.escapeShellArg msg}
    exit 1
  '';

  activation = ''
    echo "setting up agent-guard..." >&2
    install -d -m 0755 -o root -g wheel /etc/agent-guard ${logDir}
    # 0711 and a sticky 1777 spool (as `agent-guard daemon` sets them at start): every user's
    # agent can file an override request, nobody can list the state or touch another's request.
    install -d -m 0711 -o root -g wheel ${stateDir}
    install -d -m 1777 -o root -g wheel ${stateDir}/requests

    # Install and sign the binary when the store path changed (signing modifies the file, so
    # the stamp, not a checksum, says what is installed).
    stamp=${stateDir}/installed-from
    if [ ! -x ${lib.escapeShellArg installPath} ] || [ "$(cat "$stamp" 2>/dev/null)" != "${cfg.package}" ]; then
      ${
        if cfg.provisioningProfile == null then
          ''
            install -d -m 0755 -o root -g wheel /usr/local/bin
          ''
        else
          ''
            install -d -m 0755 -o root -g wheel ${lib.escapeShellArg "${bundleDir}/Contents/MacOS"}
            install -m 0644 -o root -g wheel ${infoPlist} ${lib.escapeShellArg "${bundleDir}/Contents/Info.plist"}
            install -m 0644 -o root -g wheel ${cfg.provisioningProfile} ${lib.escapeShellArg "${bundleDir}/Contents/embedded.provisionprofile"}
          ''
      }
      tmp=${lib.escapeShellArg installPath}.new
      install -m 0755 -o root -g wheel ${cfg.package}/bin/agent-guard "$tmp" \
        || { ${fail "could not copy the binary to ${installPath}"} }
      /usr/bin/codesign --force --options runtime \
        --sign ${lib.escapeShellArg cfg.signingIdentity} \
        --identifier ${label} \
        --entitlements ${entitlements} \
        "$tmp" \
        || { ${fail "codesign failed for ${installPath}: check services.agent-guard.signingIdentity (\"-\" = ad hoc, which Endpoint Security accepts only with SIP disabled)"} }
      /usr/bin/codesign --verify --strict "$tmp" \
        || { ${fail "the signature of ${installPath} does not verify"} }
      mv -f "$tmp" ${lib.escapeShellArg installPath}
      ${lib.optionalString (cfg.provisioningProfile != null) ''
        /usr/bin/codesign --force --options runtime --sign ${lib.escapeShellArg cfg.signingIdentity} \
          --identifier ${label} --entitlements ${entitlements} ${lib.escapeShellArg bundleDir} \
          || { ${fail "codesign failed for the bundle ${bundleDir}"} }
        ln -sfn ${lib.escapeShellArg installPath} /usr/local/bin/agent-guard
      ''}
      echo "${cfg.package}" > "$stamp"
      restart=1
    fi

    # The policy: validated by the binary that will read it, then swapped in atomically.
    install -m 0644 -o root -g wheel ${policyFile} ${policyPath}.new
    ${lib.escapeShellArg installPath} policy check ${policyPath}.new \
      || { rm -f ${policyPath}.new; ${fail "the policy rendered from services.agent-guard is invalid (see above); nothing was changed"} }
    mv -f ${policyPath}.new ${policyPath}

    # A running daemon keeps the old image: restart it on a new binary (launchd's KeepAlive
    # would not, since the process did not exit).
    if [ "''${restart:-0}" = 1 ] && /bin/launchctl print system/${label} >/dev/null 2>&1; then
      /bin/launchctl kickstart -k system/${label} \
        || { ${fail "could not restart ${label}"} }
    fi
  '';
in
{
  options.services.agent-guard = {
    enable = mkEnableOption "agent-guard, the Endpoint Security daemon that stops AI coding agents from destroying or stealing files";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./nix/package.nix { }";
      description = "The agent-guard package whose binary is installed and signed.";
    };

    signingIdentity = mkOption {
      type = types.str;
      default = "-";
      example = "Developer ID Application: Example Corp (ABCDE12345)";
      description = ''
        codesign identity. `-` signs ad hoc, which Endpoint Security accepts only with SIP
        disabled (local testing). A Developer ID needs an Apple-granted ES entitlement and
        `provisioningProfile`.
      '';
    };

    provisioningProfile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = ''
        The provisioning profile that authorizes the Endpoint Security entitlement for your team.
        When set, the binary is installed in an app bundle under /Library/Application Support
        (a profile cannot be embedded in a bare binary) and /usr/local/bin/agent-guard links to it.
      '';
    };

    mode = mkOption {
      type = types.enum [
        "enforce"
        "audit"
      ];
      default = "enforce";
      description = "`enforce` denies; `audit` only logs what would be denied.";
    };

    failMode = mkOption {
      type = types.enum [
        "open"
        "closed"
      ];
      default = "open";
      description = "The answer when no decision can be made before the kernel's deadline.";
    };

    agentPatterns = nullableList types.str "Names that mark a process as an AI agent (executable, argv[0], comm, script).";
    protectedZones = nullableList types.str "Directories where agents may edit but not delete or move things out.";
    readonlyZones = nullableList types.str "Directories agents may only read.";
    secretZones = nullableList types.str "Directories agents may not read at all (credentials).";
    temporaryOverrides = nullableList types.str "Paths exempt from the zone rules (codex-es-guard's temporary_overrides).";
    trustedTools = nullableList (types.either types.str (types.attrsOf types.anything)) ''
      Tools exempt inside their scope: a name, or { name, exe ? [paths], signing_id ?, team_id ?, paths ? [globs] }.
    '';
    execRules = nullableList (types.attrsOf types.anything) ''
      Denied agent execs: { program, args = [globs], unless ? [globs], action = "deny", reason }.
    '';

    extraPolicy = mkOption {
      type = types.attrsOf types.anything;
      default = { };
      description = "Keys merged last into policy.json (wins over the options above).";
    };
  };

  config = mkIf cfg.enable {
    system.activationScripts.extraActivation.text = activation;

    launchd.daemons.agent-guard.serviceConfig = {
      Label = label;
      ProgramArguments = [
        installPath
        "daemon"
      ];
      RunAtLoad = true;
      KeepAlive = true;
      ProcessType = "Interactive";
      StandardOutPath = "${logDir}/daemon.log";
      StandardErrorPath = "${logDir}/daemon.log";
      UserName = "root";
      GroupName = "wheel";
    };

    # The rendered policy, for inspection: `nix build .#darwinConfigurations.<host>.config.system.build.agentGuardPolicy`.
    system.build.agentGuardPolicy = policyFile;
  };
}

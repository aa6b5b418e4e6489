# nix-darwin module: `services.agent-guard`.
#
# One package, two executables (docs/macos.md, "Two executables: the command and the daemon
# bundle"):
# - the command, `agent-guard` on PATH (environment.systemPackages): the store binary, which
#   never carries the Endpoint Security entitlement, so AMFI never kills `status`, `hook`,
#   `override` or `policy check`;
# - the daemon: a copy of it in the app bundle
#   /Library/Application Support/agent-guard/AgentGuard.app/Contents/MacOS/agent-guard, signed
#   with the entitlement (and with a provisioning profile, the App ID entitlements the profile
#   grants), in directories only root can change (it runs as root), run by the LaunchDaemon.
#
# Activation (all in `extraActivation`, which nix-darwin runs after its checks and before it
# changes users, /etc or launchd; then `postActivation` after launchd):
# 1. checks that change nothing: the rendered policy, by the package's unsigned binary; without
#    a profile, SIP must be off (AMFI kills unprovisioned code that claims the entitlement);
#    a profile must grant the entitlement to com.agent-guard.daemon of the identity's team;
# 2. root-owned directories; the bundle rebuilt in a staging directory, signed and swapped in
#    when the install stamp (package, identity, entitlements, profile) changed or the installed
#    signature no longer verifies; the policy written as a real root-owned file by an atomic
#    rename. (Not `environment.etc`: nix-darwin's etc entries are symlinks into /etc/static,
#    swapped without any event in /etc/agent-guard, so the daemon would never hot-reload.)
# 3. the LaunchDaemon com.agent-guard.daemon (nix-darwin's launchd activation);
# 4. postActivation: `kickstart -k` after a new bundle (a running daemon keeps its old image),
#    `kickstart` otherwise (starts a daemon that stopped itself, e.g. before Full Disk Access).
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    escapeShellArg
    escapeShellArgs
    mkIf
    mkOption
    optionalString
    types
    ;
  cfg = config.services.agent-guard;
  jsonFormat = pkgs.formats.json { };

  label = "com.agent-guard.daemon";
  logDir = "/var/log/agent-guard";
  stateDir = "/var/db/agent-guard";
  policyPath = "/etc/agent-guard/policy.json";
  appSupportDir = "/Library/Application Support/agent-guard";
  bundleDir = "${appSupportDir}/AgentGuard.app";
  daemonPath = "${bundleDir}/Contents/MacOS/agent-guard";
  # What is installed: one line per input of the signature (agentGuardWanted below).
  stampPath = "${stateDir}/installed";
  # An earlier version of this module copied an entitled binary to /usr/local/bin and stamped
  # it here; that copy is removed (with SIP on, AMFI kills it at every run).
  legacyStampPath = "${stateDir}/installed-from";
  legacyCliPath = "/usr/local/bin/agent-guard";

  # Every directory on the way to the executable launchd runs as root: whoever can write one of
  # them can swap the daemon (as Intel Homebrew's user-owned /usr/local/bin would allow).
  daemonChain = [
    "/Library"
    "/Library/Application Support"
    appSupportDir
    bundleDir
    "${bundleDir}/Contents"
    "${bundleDir}/Contents/MacOS"
    daemonPath
  ];

  hasProfile = cfg.provisioningProfile != null;
  # A path literal is copied into the store, so the profile read at activation is the one the
  # configuration named; a string is used as it is.
  profileFile = "${cfg.provisioningProfile}";
  # "Developer ID Application: Example Corp (ABCDE12345)" -> "ABCDE12345"
  identityTeam =
    let
      m = builtins.match ".*\\(([A-Z0-9]{10})\\)[[:space:]]*" cfg.signingIdentity;
    in
    if m == null then null else builtins.head m;

  # Absent (null) keys are left out so the daemon's embedded default fills them in.
  policy = lib.filterAttrs (_: v: v != null) cfg.settings;
  policyFile = jsonFormat.generate "agent-guard-policy.json" policy;

  esEntitlements = ../entitlements/es.entitlements;

  # The bundle's Info.plist: its identifier is the signing identifier TCC and the profile name.
  infoPlist = ../entitlements/Info.plist;

  fail = msg: "agentGuardFail ${escapeShellArg msg}";

  sipMessage =
    (
      if cfg.signingIdentity == "-" then
        ''SIP is enabled and services.agent-guard.signingIdentity is ad hoc ("-"): macOS (AMFI) kills ad-hoc code that claims the Endpoint Security entitlement, so the daemon could never start''
      else
        "SIP is enabled and services.agent-guard has no provisioningProfile: macOS (AMFI) kills a daemon whose Endpoint Security entitlement no Apple provisioning profile authorizes"
    )
    + "; sign with the entitlement Apple granted your team (signingIdentity = your Developer ID Application identity, provisioningProfile = its profile; docs/macos.md), or test on a Mac with SIP disabled; nothing was changed";

  # Shell: the profile's team and App ID, checked; sets agentGuardTeam and agentGuardAppId.
  profileChecks = ''
    agentGuardProfilePlist=$(mktemp)
    security cms -D -i "$agentGuardProfile" -o "$agentGuardProfilePlist" \
      || agentGuardFail "could not decode $agentGuardProfile (security cms -D): services.agent-guard.provisioningProfile must be a .provisionprofile from Apple; nothing was changed"
    agentGuardTeam=$(plutil -extract TeamIdentifier json -o - "$agentGuardProfilePlist" | ${pkgs.jq}/bin/jq -r '.[0] // empty') \
      || agentGuardFail "$agentGuardProfile has no TeamIdentifier; nothing was changed"
    agentGuardProfileEntitlements=$(plutil -extract Entitlements json -o - "$agentGuardProfilePlist") \
      || agentGuardFail "$agentGuardProfile has no Entitlements; nothing was changed"
    rm -f "$agentGuardProfilePlist"
    [[ $agentGuardTeam =~ ^[A-Z0-9]{10}$ ]] \
      || agentGuardFail "$agentGuardProfile names no team ID (TeamIdentifier is '$agentGuardTeam'); nothing was changed"
    agentGuardProfileGrant=$(${pkgs.jq}/bin/jq -r '."com.apple.developer.endpoint-security.client" // empty' <<<"$agentGuardProfileEntitlements")
    [ "$agentGuardProfileGrant" = true ] \
      || agentGuardFail "$agentGuardProfile does not grant com.apple.developer.endpoint-security.client: Apple must grant the Endpoint Security entitlement to team $agentGuardTeam, then download a new profile; nothing was changed"
    agentGuardAppId=$(${pkgs.jq}/bin/jq -r '."com.apple.application-identifier" // empty' <<<"$agentGuardProfileEntitlements")
    case "$agentGuardAppId" in
      "$agentGuardTeam.${label}" | "$agentGuardTeam.*") agentGuardAppId="$agentGuardTeam.${label}" ;;
      *) agentGuardFail "$agentGuardProfile is for the App ID '$agentGuardAppId', not $agentGuardTeam.${label}: make the profile for the bundle ID ${label}; nothing was changed" ;;
    esac
    ${optionalString (identityTeam != null) ''
      [ "$agentGuardTeam" = ${identityTeam} ] \
        || agentGuardFail "$agentGuardProfile belongs to team $agentGuardTeam but signingIdentity is team ${identityTeam}'s: a profile authorizes only code its own team signs; nothing was changed"
    ''}
  '';

  # Shell: the entitlements the daemon is signed with; with a profile, the App ID entitlements
  # it grants too (without them AMFI kills the daemon at launch). Sets agentGuardEntitlements.
  writeEntitlements =
    if hasProfile then
      ''
        agentGuardEntitlements="$agentGuardStage/entitlements.plist"
        cat >"$agentGuardEntitlements" <<AGENT_GUARD_ENTITLEMENTS
        <?xml version="1.0" encoding="UTF-8"?>
        <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
        <plist version="1.0">
        <dict>
        	<key>com.apple.application-identifier</key>
        	<string>$agentGuardAppId</string>
        	<key>com.apple.developer.endpoint-security.client</key>
        	<true/>
        	<key>com.apple.developer.team-identifier</key>
        	<string>$agentGuardTeam</string>
        </dict>
        </plist>
        AGENT_GUARD_ENTITLEMENTS
      ''
    else
      ''
        agentGuardEntitlements=${esEntitlements}
      '';

  activation = ''
    # agent-guard (services.agent-guard): checks first, then the signed daemon bundle and the policy.
    echo "setting up agent-guard..." >&2
    agentGuardFail() {
      printf >&2 '\e[1;31magent-guard: %s\e[0m\n' "$1"
      exit 1
    }
    agentGuardIdentity=${escapeShellArg cfg.signingIdentity}
    ${optionalString hasProfile "agentGuardProfile=${escapeShellArg profileFile}"}

    # 1. Checks; nothing is changed before they pass.
    # The package's own binary checks the policy: it is unsigned by us, so it runs whatever SIP
    # says (the bundle's copy is the daemon's, and an unauthorized entitlement gets it killed).
    ${cfg.package}/bin/agent-guard policy check ${policyFile} >&2 \
      || ${fail "the policy rendered from services.agent-guard.settings is invalid (see above); nothing was changed"}
    ${
      if hasProfile then
        profileChecks
      else
        ''
          agentGuardSip=$(csrutil status) \
            || ${fail "csrutil status failed, so whether SIP allows an unprovisioned daemon is unknown; nothing was changed"}
          case "$agentGuardSip" in
            *"status: disabled"*) ;;
            *"status: enabled"*) ${fail sipMessage} ;;
            *) printf >&2 'agent-guard: warning: SIP has a custom configuration (%s): if the daemon is killed at launch, AMFI still enforces entitlements there\n' "$agentGuardSip" ;;
          esac
        ''
    }

    # 2. Directories, all root's (the daemon sets the same modes at start).
    install -d -m 0755 -o root -g wheel /etc/agent-guard ${logDir} ${escapeShellArg appSupportDir}
    # 0711 and a sticky 1777 spool: every user's agent can file an override request, nobody
    # can list the state or touch another's request.
    install -d -m 0711 -o root -g wheel ${stateDir}
    install -d -m 1777 -o root -g wheel ${stateDir}/requests
    agentGuardCheckOwners() {
      local p owner mode
      for p in "$@"; do
        if [ -L "$p" ]; then
          agentGuardFail "$p is a symbolic link: the daemon runs as root from ${daemonPath}, so no part of that path may lead elsewhere"
        fi
        [ -e "$p" ] || continue
        read -r owner mode < <(stat -c '%u %a' -- "$p")
        if [ "$owner" != 0 ] || (((8#$mode & 8#022) != 0)); then
          agentGuardFail "$p is owned by uid $owner with mode $mode: the daemon runs as root from ${daemonPath}, so only root may be able to change any part of that path (sudo chown root \"$p\" && sudo chmod go-w \"$p\")"
        fi
      done
    }
    agentGuardCheckOwners ${escapeShellArgs daemonChain}

    if [ -e ${legacyStampPath} ]; then
      rm -f ${legacyCliPath} ${legacyStampPath}
      echo "agent-guard: removed ${legacyCliPath}, the entitled copy an earlier version installed; agent-guard on PATH is the unentitled command now" >&2
    fi

    # The bundle: built in a staging directory beside it, signed, then swapped in.
    rm -rf ${escapeShellArg appSupportDir}/.install.*
    agentGuardStage=$(mktemp -d ${escapeShellArg "${appSupportDir}/.install.XXXXXX"})
    ${writeEntitlements}
    # Everything the signature depends on: a change to any of them re-signs.
    agentGuardWanted="layout: app bundle 1
    package: ${cfg.package}
    identity: $agentGuardIdentity
    entitlements: $(sha256sum <"$agentGuardEntitlements")
    profile: ${if hasProfile then ''$(sha256sum <"$agentGuardProfile")'' else "none"}
    Info.plist: ${infoPlist}"
    agentGuardReason=
    if [ "$(cat ${stampPath} 2>/dev/null)" != "$agentGuardWanted" ]; then
      agentGuardReason="the package, signing identity, entitlements or provisioning profile changed"
    elif ! codesign --verify --strict ${escapeShellArg bundleDir} 2>/dev/null; then
      agentGuardReason="the installed signature does not verify"
    fi
    if [ -n "$agentGuardReason" ]; then
      echo "agent-guard: installing ${bundleDir} ($agentGuardReason)" >&2
      agentGuardNew="$agentGuardStage/AgentGuard.app"
      install -d -m 0755 -o root -g wheel "$agentGuardNew/Contents/MacOS"
      install -m 0644 -o root -g wheel ${infoPlist} "$agentGuardNew/Contents/Info.plist"
      ${optionalString hasProfile ''install -m 0644 -o root -g wheel "$agentGuardProfile" "$agentGuardNew/Contents/embedded.provisionprofile"''}
      install -m 0755 -o root -g wheel ${cfg.package}/bin/agent-guard "$agentGuardNew/Contents/MacOS/agent-guard" \
        || ${fail "could not copy ${cfg.package}/bin/agent-guard into the bundle; nothing was changed"}
      codesign --force --options runtime --sign "$agentGuardIdentity" --identifier ${label} \
        --entitlements "$agentGuardEntitlements" "$agentGuardNew" \
        || ${fail ''codesign failed for the daemon bundle: check services.agent-guard.signingIdentity ("-" = ad hoc; a Developer ID must be in the System keychain, as activation runs as root); nothing was changed''}
      codesign --verify --strict "$agentGuardNew" \
        || ${fail "the signature of the new daemon bundle does not verify; nothing was changed"}
      # A running daemon keeps its image; the path is absent only between the two renames.
      rm -rf ${escapeShellArg "${bundleDir}.old"}
      if [ -e ${escapeShellArg bundleDir} ]; then
        mv ${escapeShellArg bundleDir} ${escapeShellArg "${bundleDir}.old"}
      fi
      mv "$agentGuardNew" ${escapeShellArg bundleDir}
      rm -rf ${escapeShellArg "${bundleDir}.old"}
      printf '%s\n' "$agentGuardWanted" >${stampPath}.new
      mv -f ${stampPath}.new ${stampPath}
      # A running daemon keeps its old image: restarted after launchd's activation. (A daemon
      # not loaded yet is started with the new one when launchd loads it.)
      if launchctl print system/${label} >/dev/null 2>&1; then
        agentGuardRestart=1
      fi
    fi
    rm -rf "$agentGuardStage"
    agentGuardCheckOwners ${escapeShellArgs daemonChain}

    # The policy, checked above: a real root-owned 0644 file, replaced by an atomic rename (the
    # daemon's watcher reloads it), and only when it changed.
    if ! cmp -s ${policyFile} ${policyPath} || [ "$(stat -c '%u %g %a' ${policyPath})" != "0 0 644" ]; then
      install -m 0644 -o root -g wheel ${policyFile} ${policyPath}.new
      mv -f ${policyPath}.new ${policyPath}
    fi
  '';

  restart = ''
    # agent-guard: restart the daemon on a new bundle, or start it if it stopped itself.
    if launchctl print system/${label} >/dev/null 2>&1; then
      if [ "''${agentGuardRestart:-0}" = 1 ]; then
        launchctl kickstart -k system/${label} \
          || ${fail "could not restart ${label} on the new bundle: sudo launchctl kickstart -k system/${label}"}
      elif ! launchctl kickstart system/${label}; then
        echo "agent-guard: warning: could not start ${label}; see ${logDir}/daemon.log" >&2
      fi
    fi
  '';

  # An object form of a policy list entry: free JSON, with the key that names it required.
  objectWith =
    key: description:
    types.submodule {
      freeformType = jsonFormat.type;
      options.${key} = mkOption {
        type = types.str;
        inherit description;
      };
    };
  listOrObjects = key: description: types.listOf (types.either types.str (objectWith key description));

  # The policy keys with a declared type: `settings.<key>`, and the camelCase option (the name
  # codex-es-guard's module used) that sets the same key. Both are checked against the type, and
  # an error names the option the user wrote.
  policyKeys = {
    mode = {
      alias = "mode";
      type = types.enum [
        "enforce"
        "audit"
      ];
      default = "enforce";
      description = "`enforce` denies; `audit` only logs what would be denied.";
    };
    fail_mode = {
      alias = "failMode";
      type = types.enum [
        "open"
        "closed"
      ];
      default = "open";
      description = "The answer when no decision can be made before the kernel's deadline.";
    };
    ai_agent_patterns = {
      alias = "agentPatterns";
      type = types.listOf types.str;
      description = "Names that mark a process as an AI agent (executable, argv[0], comm, script).";
    };
    protected_zones = {
      alias = "protectedZones";
      type = listOrObjects "path" "The zone's root.";
      description = "Where agents may edit but not delete or move things out: a path, or `{ path; except = [ globs ]; }`.";
    };
    readonly_zones = {
      alias = "readonlyZones";
      type = types.listOf types.str;
      description = "Paths agents may only read.";
    };
    secret_zones = {
      alias = "secretZones";
      type = types.listOf types.str;
      description = "Paths agents may not read at all (credentials).";
    };
    temporary_overrides = {
      alias = "temporaryOverrides";
      type = listOrObjects "path" "The subtree the override exempts.";
      description = "Subtrees exempt from the zones' denials: a path, or `{ path; ops = [ ... ]; expires_at; }`.";
    };
    trusted_tools = {
      alias = "trustedTools";
      type = listOrObjects "name" "The tool's name.";
      description = "Tools exempt inside their scope: a name, or `{ name; exe ? [ paths ]; signing_id ?; team_id ?; paths ? [ globs ]; }`.";
    };
    exec_rules = {
      alias = "execRules";
      type = types.listOf (objectWith "program" "The program the rule denies to agents.");
      description = ''Denied agent execs: `{ program; args = [ globs ]; unless ? [ globs ]; action = "deny"; reason; }`.'';
    };
  };
  unsetMeansDefault = "`null` leaves the key out of the policy, so the embedded default applies; `[ ]` means none.";
in
{
  imports = [
    (lib.mkRenamedOptionModule
      [
        "services"
        "agent-guard"
        "extraPolicy"
      ]
      [
        "services"
        "agent-guard"
        "settings"
      ]
    )
  ];

  options.services.agent-guard = {
    enable = lib.mkEnableOption "agent-guard, the Endpoint Security daemon that stops AI coding agents from destroying or stealing files";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./nix/package.nix { }";
      description = ''
        The agent-guard package. Its binary is the `agent-guard` command on PATH, never
        entitled; a copy of it, signed with the Endpoint Security entitlement, is the daemon.
      '';
    };

    signingIdentity = mkOption {
      type = types.str;
      default = "-";
      example = "Developer ID Application: Example Corp (ABCDE12345)";
      description = ''
        codesign identity for the daemon bundle. `-` signs ad hoc, which macOS accepts for the
        Endpoint Security entitlement only with SIP disabled (a test Mac): activation stops
        otherwise. A Developer ID needs `provisioningProfile` and must be in the System keychain
        (activation runs as root).
      '';
    };

    provisioningProfile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = lib.literalExpression "./agent-guard.provisionprofile";
      description = ''
        The provisioning profile that authorizes the Endpoint Security entitlement for your team,
        made for the bundle ID `${label}`. It is embedded in the daemon bundle, and its team ID and
        App ID are signed into the daemon's entitlements (`com.apple.developer.team-identifier`,
        `com.apple.application-identifier`).
      '';
    };

    settings = mkOption {
      type = types.submodule {
        freeformType = jsonFormat.type;
        options = lib.mapAttrs (
          _: k:
          mkOption {
            type = if k ? default then k.type else types.nullOr k.type;
            default = k.default or null;
            description = k.description + lib.optionalString (!k ? default) "\n${unsetMeansDefault}";
          }
        ) policyKeys;
      };
      default = { };
      example = lib.literalExpression ''
        {
          protected_zones = [ "~/src" { path = "~/work"; except = [ "**/target/**" ]; } ];
          secret_zones = [ "~/.ssh" "~/.aws" ];
          max_override_ttl = "2h";
        }
      '';
      description = ''
        The policy, written to ${policyPath} (README, "The policy"; `agent-guard policy schema`
        prints its JSON Schema). Keys without an option here are free JSON. The camelCase options
        (`protectedZones`, `failMode`, ...) set the keys they name.
      '';
    };
  }
  // lib.mapAttrs' (
    key: k:
    lib.nameValuePair k.alias (mkOption {
      type = types.nullOr k.type;
      default = null;
      description = "Sets `settings.${key}`: ${k.description}";
    })
  ) policyKeys;

  config = mkIf cfg.enable {
    services.agent-guard.settings = lib.mapAttrs (_: k: mkIf (cfg.${k.alias} != null) cfg.${k.alias}) policyKeys;

    assertions = [
      {
        assertion = pkgs.stdenv.hostPlatform.isDarwin;
        message = "services.agent-guard is the macOS Endpoint Security daemon (nix-darwin); on Linux run agents under `agent-guard run`.";
      }
      {
        assertion = hasProfile -> cfg.signingIdentity != "-";
        message = ''services.agent-guard.provisioningProfile is set but signingIdentity is ad hoc ("-"): a profile authorizes the entitlement only for code its team's certificate signs; set signingIdentity to that Developer ID Application identity.'';
      }
      {
        assertion = cfg.signingIdentity != "";
        message = ''services.agent-guard.signingIdentity is empty: use "-" (ad hoc, SIP disabled) or a Developer ID Application identity.'';
      }
    ];

    # The command: the store binary, unentitled.
    environment.systemPackages = [ cfg.package ];

    system.activationScripts.extraActivation.text = activation;
    system.activationScripts.postActivation.text = restart;

    launchd.daemons.agent-guard.serviceConfig = {
      Label = label;
      ProgramArguments = [
        daemonPath
        "daemon"
      ];
      RunAtLoad = true;
      # Restarted after a crash or a non-zero exit, not after exit 0: under launchd the daemon
      # exits 0 when a restart cannot help until someone acts (not entitled, no Full Disk Access,
      # macOS older than 13), instead of failing again every ten seconds.
      KeepAlive.SuccessfulExit = false;
      # A daemon that dies within 30 s of its start is started again 30 s after that start.
      ThrottleInterval = 30;
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

# Evaluate nix/darwin-module.nix against a stand-in of the nix-darwin option set.
#
# `nix-instantiate --eval --strict --json nix/tests/eval.nix --arg userConfig '...'` prints:
#   ok           every option value type-checks and every path the module sets exists in nix-darwin
#   unknown      the config paths the module sets that nix-darwin does not declare
#   badOptions   user options whose value does not match the declared type
#   policy       the policy.json the module renders (parsed)
#   daemon       launchd.daemons.agent-guard.serviceConfig
#   activation   system.activationScripts.extraActivation.text
{
  userConfig ? {
    enable = true;
  },
}:
let
  lib = import ./lib-stub.nix;
  pkgs = import ./pkgs-stub.nix;
  module = import ../darwin-module.nix;

  # Options do not depend on config, so a first call with an empty config yields them.
  declared = (module {
    config = { };
    inherit lib pkgs;
  }).options.services.agent-guard;
  defaults = builtins.mapAttrs (_: o: o.default) declared;
  cfg = defaults // userConfig;

  badOptions = builtins.filter (
    name: !(declared ? ${name}) || !(declared.${name}.type.check cfg.${name})
  ) (builtins.attrNames userConfig);

  raw =
    (module {
      config.services.agent-guard = cfg;
      inherit lib pkgs;
    }).config;
  resolved = if raw._type or null == "if" then (if raw.condition then raw.content else { }) else raw;

  # The nix-darwin options this module may set ("*" = any attribute name). Everything else
  # would be an "option does not exist" error on a real system.
  known = [
    [ "system" "activationScripts" "extraActivation" "text" ]
    [ "system" "activationScripts" "postActivation" "text" ]
    [ "system" "activationScripts" "preActivation" "text" ]
    [ "system" "build" "*" ]
    [ "launchd" "daemons" "*" "serviceConfig" "*" ]
    [ "environment" "etc" "*" "text" ]
    [ "environment" "etc" "*" "source" ]
    [ "environment" "etc" "*" "enable" ]
    [ "environment" "etc" "*" "copy" ]
  ];
  matches =
    path: pattern:
    builtins.length path == builtins.length pattern
    && builtins.all (i: builtins.elemAt pattern i == "*" || builtins.elemAt pattern i == builtins.elemAt path i) (
      builtins.genList (i: i) (builtins.length path)
    );
  isKnown = path: builtins.any (matches path) known;
  # Leaf paths of the config: descend into attrsets unless a prefix is already a known leaf.
  leaves =
    prefix: value:
    if isKnown prefix then
      [ prefix ]
    else if builtins.isAttrs value && !(value ? outPath) then
      builtins.concatLists (builtins.map (n: leaves (prefix ++ [ n ]) value.${n}) (builtins.attrNames value))
    else
      [ prefix ];
  setPaths = leaves [ ] resolved;
  unknown = builtins.map (builtins.concatStringsSep ".") (builtins.filter (p: !(isKnown p)) setPaths);
in
{
  ok = unknown == [ ] && badOptions == [ ];
  inherit unknown badOptions;
  enabled = resolved != { };
  policy = if resolved ? system then builtins.fromJSON resolved.system.build.agentGuardPolicy.text else null;
  daemon = resolved.launchd.daemons.agent-guard.serviceConfig or null;
  activation = resolved.system.activationScripts.extraActivation.text or "";
}

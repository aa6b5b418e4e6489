# The few nixpkgs `lib` functions nix/darwin-module.nix uses, for evaluating it without a
# nixpkgs checkout. Types carry a `check` so the harness can type-check option values the way
# the module system would (shallowly: no merging, no submodules).
let
  inherit (builtins)
    all
    attrValues
    elem
    filter
    isAttrs
    isBool
    isList
    isPath
    isString
    listToAttrs
    attrNames
    replaceStrings
    ;
in
rec {
  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = name: mkOption {
    type = types.bool;
    default = false;
    description = "Whether to enable ${name}.";
  };
  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  mkDefault = value: value;
  literalExpression = text: {
    _type = "literalExpression";
    inherit text;
  };

  filterAttrs =
    pred: set:
    listToAttrs (
      map (name: {
        inherit name;
        value = set.${name};
      }) (filter (name: pred name set.${name}) (attrNames set))
    );
  optionalString = cond: s: if cond then s else "";
  escapeShellArg = arg: "'${replaceStrings [ "'" ] [ "'\\''" ] (toString arg)}'";

  types = {
    bool = { name = "bool"; check = isBool; };
    str = { name = "str"; check = isString; };
    path = { name = "path"; check = v: isPath v || isString v; };
    package = { name = "package"; check = v: isAttrs v && v ? outPath; };
    anything = { name = "anything"; check = _: true; };
    enum = values: { name = "enum"; check = v: elem v values; };
    nullOr = t: { name = "nullOr ${t.name}"; check = v: v == null || t.check v; };
    listOf = t: { name = "listOf ${t.name}"; check = v: isList v && all t.check v; };
    attrsOf = t: { name = "attrsOf ${t.name}"; check = v: isAttrs v && all t.check (attrValues v); };
    either = a: b: { name = "either"; check = v: a.check v || b.check v; };
  };
}

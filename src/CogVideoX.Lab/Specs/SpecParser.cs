using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace CogVideoX.Lab.Specs;

/// <summary>
/// Reads an experiment spec from YAML through YamlDotNet's representation model (no reflection, so AOT-safe), and
/// checks all of it: every problem is reported at once, each at its line and column, with what is allowed.
/// </summary>
/// <remarks>
/// Layout (paths are relative to the spec file's folder):
/// <code>
/// name: my_study                 # optional; default: the file name
/// description: text              # optional
/// output_dir: ../outputs         # default: outputs
/// prompt_dir: ../prompts         # default: prompts; prompt NAME is the file NAME.txt there
/// defaults: { steps: 50, guidance: 6, ... }
/// experiments:
///   baseline: { prompts: [a, b] }
///   guidance: { prompts: [a], vary: { guidance: [1, 6, 12] }, reference: 6 }
///   grid:     { prompts: [a], grid: { guidance: [1, 6], steps: [10, 25] }, reference: { guidance: 6, steps: 25 } }
/// </code>
/// An experiment may also carry <c>settings:</c> (applied over the defaults) and <c>description:</c>.
/// </remarks>
public static partial class SpecParser
{
    private static readonly string[] s_topKeys = ["name", "description", "output_dir", "prompt_dir", "defaults", "experiments"];
    private static readonly string[] s_experimentKeys = ["description", "prompts", "settings", "vary", "grid", "reference"];

    /// <summary>How deeply collections may nest: a spec needs 4 levels; YamlDotNet's node tree recurses once per level.</summary>
    public const int MaxDepth = 32;

    /// <summary>Videos a spec may plan in all: far beyond any study, well within memory for the plan and its manifest.</summary>
    public const long MaxJobs = 100_000;

    /// <summary>Largest prompt file read.</summary>
    public const long MaxPromptBytes = 1L << 20;

    /// <summary>Largest spec file read.</summary>
    public const long MaxFileBytes = 32L << 20;

    /// <summary>Longest experiment or spec name (it is a folder or file name under output_dir).</summary>
    public const int MaxNameLength = 100;

    public static ExperimentSpec Load(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new SpecException($"{path}: no such spec file (experiment specs are YAML files, e.g. experiments/cogvideox_study.yaml)");
        // Read whole, so bounded first: a spec of the largest allowed study is a few megabytes.
        if (new FileInfo(full).Length is var length and > MaxFileBytes)
            throw new SpecException($"{path}: the spec file is {length} bytes; a spec may be at most {MaxFileBytes} bytes (a study of {MaxJobs} videos fits in a few megabytes)");
        return Parse(File.ReadAllText(full), full);
    }

    public static ExperimentSpec Parse(string yaml, string sourcePath)
    {
        var ctx = new Context(sourcePath);
        var stream = new YamlStream();
        try
        {
            CheckDepth(yaml, ctx.File);
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new SpecException($"{ctx.File}:{e.Start.Line}:{e.Start.Column}: YAML syntax error: {e.Message}");
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet's scanner gives up this way at the end of input inside an open flow collection.
            int lines = yaml.Split('\n').Length;
            throw new SpecException($"{ctx.File}:{lines}:1: YAML syntax error: the file ends inside an unclosed [ … ] or {{ … }}");
        }
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new SpecException($"{ctx.File}: a spec is a YAML mapping with keys {string.Join(", ", s_topKeys)}; this file has none");
        if (stream.Documents.Count > 1)
            ctx.Error(stream.Documents[1].RootNode, "a spec is one YAML document; remove the second `---` document");

        var top = ctx.Keys(root, s_topKeys, "the spec");
        var folder = Path.GetDirectoryName(Path.GetFullPath(sourcePath))!;
        var name = ctx.Scalar(top, "name") is { } nameNode ? ctx.Identifier(nameNode, "spec name") : Path.GetFileNameWithoutExtension(sourcePath);
        var description = ctx.Scalar(top, "description")?.Value;
        var outputDir = ctx.Folder(top, "output_dir", folder, "outputs");
        var promptDir = ctx.Folder(top, "prompt_dir", folder, "prompts");

        var defaults = new GenerationSettings();
        var givenDefaults = new HashSet<string>(StringComparer.Ordinal);
        if (top.TryGetValue("defaults", out var defaultsNode))
            defaults = ctx.ApplySettings(defaults, defaultsNode, "defaults", givenDefaults);

        var available = Directory.Exists(promptDir)
            ? Directory.GetFiles(promptDir, "*.txt").Select(Path.GetFileNameWithoutExtension).OfType<string>().Order(StringComparer.Ordinal).ToArray()
            : [];
        var prompts = new Dictionary<string, string>(StringComparer.Ordinal);
        var experiments = new List<ExperimentDefinition>();
        if (!top.TryGetValue("experiments", out var expsNode))
            ctx.Error(root, "the spec has no `experiments:`; add at least one, e.g. `experiments: { baseline: { prompts: [panda_guitar] } }`");
        else if (expsNode is not YamlMappingNode exps || exps.Children.Count == 0)
            ctx.Error(expsNode, "`experiments:` must be a mapping of experiment name → { prompts, vary | grid, reference, settings }");
        else
        {
            double jobs = 0;
            foreach (var (keyNode, body) in exps.Children)
            {
                if (keyNode is not YamlScalarNode expKey)
                {
                    ctx.Error(keyNode, $"experiment names must be plain names (letters, digits, '_', '.', '-'), not a {Context.Describe(keyNode)}");
                    continue;
                }
                var expName = ctx.Identifier(expKey, "experiment name");
                var exp = ctx.Experiment(expName, body, defaults, givenDefaults, promptDir, available, prompts);
                if (exp is null) continue;
                experiments.Add(exp);
                jobs += ctx.CheckJobs(exp, body, jobs);
            }
        }
        ctx.ThrowIfErrors();
        return new ExperimentSpec
        {
            Name = name,
            Description = description,
            SourcePath = Path.GetFullPath(sourcePath),
            OutputDir = outputDir,
            PromptDir = promptDir,
            Defaults = defaults,
            Experiments = experiments,
            Prompts = prompts,
        };
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    private static partial Regex SafeName();

    /// <summary>
    /// Walks the YAML's events (YamlDotNet's parser keeps its own stack, so this cannot overflow ours) and stops at
    /// the first collection nested deeper than <see cref="MaxDepth"/>, before the node tree is built recursively.
    /// </summary>
    private static void CheckDepth(string yaml, string file)
    {
        var parser = new Parser(new StringReader(yaml));
        // The anchors of the collections now open: an alias to one of them would make the tree a cycle.
        var open = new List<string>();
        while (parser.MoveNext())
        {
            var e = parser.Current!;
            switch (e)
            {
                case MappingStart or SequenceStart:
                    if (open.Count >= MaxDepth)
                        throw new SpecException($"{file}:{e.Start.Line}:{e.Start.Column}: the YAML nests lists and mappings more than {MaxDepth} deep; a spec needs 4 levels (experiments → experiment → grid → values)");
                    open.Add(((NodeEvent)e).Anchor.IsEmpty ? "" : ((NodeEvent)e).Anchor.Value);
                    break;
                case MappingEnd or SequenceEnd:
                    open.RemoveAt(open.Count - 1);
                    break;
                case AnchorAlias alias when open.Contains(alias.Value.Value):
                    throw new SpecException($"{file}:{e.Start.Line}:{e.Start.Column}: the alias *{alias.Value.Value} refers to a list or mapping that contains it; a spec cannot be circular");
            }
        }
    }

    private sealed class Context(string file)
    {
        private readonly List<string> _errors = [];

        public string File { get; } = file;

        private int _errorCount;

        public void Error(YamlNode node, string message)
        {
            // Only the first few are shown; a huge list of bad values must not hold a message for each.
            if (++_errorCount <= 20) _errors.Add($"{File}:{node.Start.Line}:{node.Start.Column}: {message}");
        }

        public void ThrowIfErrors()
        {
            if (_errorCount == 0) return;
            var shown = _errors.ToList();
            if (_errorCount > 20) shown.Add($"… and {_errorCount - 20} more");
            throw new SpecException((_errorCount == 1 ? "invalid experiment spec: " : $"invalid experiment spec ({_errorCount} problems):\n  ")
                + string.Join("\n  ", shown));
        }

        /// <summary>An output_dir or prompt_dir as an absolute folder (relative to the spec's folder).</summary>
        public string Folder(Dictionary<string, YamlNode> top, string key, string specFolder, string fallback)
        {
            var node = Scalar(top, key);
            var value = node?.Value ?? fallback;
            try
            {
                if (value.Length > 0 && !value.Contains('\0', StringComparison.Ordinal))
                    return Path.GetFullPath(Path.Combine(specFolder, value));
            }
            catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
            {
            }
            Error(node!, $"{key} '{value}' is not a usable folder path; give a folder, relative to the spec's folder or absolute");
            return Path.GetFullPath(Path.Combine(specFolder, fallback));
        }

        /// <summary>
        /// Checks an experiment's video count (with the ones before it) against <see cref="MaxJobs"/> and that no two
        /// of its videos share an output name; returns its count.
        /// </summary>
        public double CheckJobs(ExperimentDefinition exp, YamlNode node, double before)
        {
            // In double: a grid of many long lists overflows a long.
            double count = exp.Prompts.Count;
            foreach (var v in exp.Varied) count *= v.Values.Count;
            if (before + count > MaxJobs)
            {
                var factors = string.Join(" × ", new[] { $"{exp.Prompts.Count} prompt(s)" }.Concat(exp.Varied.Select(v => $"{v.Values.Count} {v.Key}")));
                Error(node, $"experiment '{exp.Name}' makes {count:0} videos ({factors}){(before > 0 ? $", {before + count:0} with the experiments before it" : "")}; " +
                    $"a spec may plan at most {MaxJobs} videos; vary fewer values, or split the study into several specs");
                return count;
            }
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var name in StudyPlan.JobNames(exp))
                if (!seen.Add(name))
                {
                    Error(node, $"two videos of experiment '{exp.Name}' would both be written to {exp.Name}/{name}.mp4; make the varied values differ in more than punctuation");
                    break;
                }
            return count;
        }

        /// <summary>The mapping's entries by key; unknown or repeated keys are errors.</summary>
        public Dictionary<string, YamlNode> Keys(YamlMappingNode map, string[] allowed, string where)
        {
            var result = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
            foreach (var (k, v) in map.Children)
            {
                if (k is not YamlScalarNode { Value: { } key })
                {
                    Error(k, $"keys in {where} must be plain names, not a {Describe(k)}; allowed: {string.Join(", ", allowed)}");
                    continue;
                }
                if (!allowed.Contains(key))
                    Error(k, $"unknown key '{key}' in {where}{Suggest(key, allowed)}; allowed: {string.Join(", ", allowed)}");
                else if (!result.TryAdd(key, v))
                    Error(k, $"'{key}' appears twice in {where}");
            }
            return result;
        }

        public YamlScalarNode? Scalar(Dictionary<string, YamlNode> map, string key)
        {
            if (!map.TryGetValue(key, out var node)) return null;
            if (node is YamlScalarNode s && s.Value is not null) return s;
            Error(node, $"'{key}' must be a single value (text), not a {Describe(node)}");
            return null;
        }

        public string Identifier(YamlScalarNode node, string what)
        {
            var value = node.Value ?? "";
            if (!SafeName().IsMatch(value) || value.Contains("..", StringComparison.Ordinal))
                Error(node, $"{what} '{Shorten(value)}' must start with a letter or digit and use only letters, digits, '_', '.', '-' (it names files)");
            else if (value.Length > MaxNameLength)
                Error(node, $"{what} '{Shorten(value)}' is {value.Length} characters long; at most {MaxNameLength} are allowed (it names files)");
            return value;
        }

        /// <summary>The settings a mapping names applied to <paramref name="settings"/>; their names go into <paramref name="given"/>.</summary>
        public GenerationSettings ApplySettings(GenerationSettings settings, YamlNode node, string where, ISet<string>? given = null)
        {
            if (node is not YamlMappingNode map)
            {
                Error(node, $"{where} must be a mapping of setting → value; settings: {KeyList()}");
                return settings;
            }
            foreach (var (key, valueNode) in SettingEntries(map, where))
                if (ParseValue(key, valueNode) is { } value)
                {
                    settings = key.Apply(settings, value);
                    given?.Add(key.Name);
                }
            return settings;
        }

        private IEnumerable<(SettingKey Key, YamlNode Value)> SettingEntries(YamlMappingNode map, string where)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (k, v) in map.Children)
            {
                if (k is not YamlScalarNode)
                {
                    Error(k, $"settings in {where} are named by plain keys, not a {Describe(k)}; settings: {KeyList()}");
                    continue;
                }
                var name = ((YamlScalarNode)k).Value ?? "";
                var key = SettingKey.Find(name);
                if (key is null)
                {
                    Error(k, $"unknown setting '{name}' in {where}{Suggest(name, SettingKey.All.Select(x => x.Name))}; settings: {KeyList()}");
                    continue;
                }
                if (!seen.Add(name))
                {
                    Error(k, $"'{name}' appears twice in {where}");
                    continue;
                }
                yield return (key, v);
            }
        }

        private SettingValue? ParseValue(SettingKey key, YamlNode node)
        {
            if (node is not YamlScalarNode scalar)
            {
                Error(node, $"{key.Name} must be a single value ({key.Allowed}), not a {Describe(node)}");
                return null;
            }
            bool isNull = scalar.Style is ScalarStyle.Plain or ScalarStyle.Any && scalar.Value is null or "" or "~" or "null" or "Null" or "NULL";
            if (key.TryParse(scalar.Value, isNull, out var value, out var error))
                return value!.Key == "lora" ? LoraRelativeToSpec(value, node) : InputRelativeToSpec(value);
            Error(node, error!);
            return null;
        }

        /// <summary>
        /// An input image or video named relative to the spec file, like its other paths (the name keeps its text); a
        /// model too when that names a folder next to the spec (else it stays an alias, a repo id or a folder from
        /// where the run starts).
        /// </summary>
        private SettingValue InputRelativeToSpec(SettingValue value)
        {
            if (value.Key is not ("image" or "video" or "model") || value.Value is not string path || Path.IsPathRooted(path)) return value;
            var full = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(File))!, path));
            return value.Key != "model" || Directory.Exists(full) ? value with { Value = full } : value;
        }

        /// <summary>
        /// LoRA files named relative to the spec file, like its images and videos (absolute paths stay as they are; the
        /// name keeps its text). A file that is not there is an error naming the path it was looked for at.
        /// </summary>
        private SettingValue? LoraRelativeToSpec(SettingValue value, YamlNode node)
        {
            if (value.Value is not string text) return value;
            var folder = Path.GetDirectoryName(Path.GetFullPath(File))!;
            var resolved = new List<Models.Lora.LoraSpec>();
            bool missing = false;
            foreach (var lora in Models.Lora.LoraSpec.ParseList(text))
            {
                var path = Path.IsPathRooted(lora.File) ? lora.File : Path.GetFullPath(Path.Combine(folder, lora.File));
                if (!System.IO.File.Exists(path))
                {
                    Error(node, $"lora: no LoRA file {path} ('{lora.File}'{(Path.IsPathRooted(lora.File) ? "" : " relative to the spec's folder " + folder)}); " +
                        "give a .safetensors file as FILE or FILE:STRENGTH, relative to the spec file or absolute");
                    missing = true;
                }
                resolved.Add(lora with { File = path });
            }
            return missing ? null : value with { Value = Models.Lora.LoraSpec.FormatList(resolved) };
        }

        public ExperimentDefinition? Experiment(string name, YamlNode node, GenerationSettings defaults, IReadOnlySet<string> givenDefaults,
            string promptDir, string[] available, Dictionary<string, string> promptTexts)
        {
            var where = $"experiment '{name}'";
            if (node is not YamlMappingNode map)
            {
                Error(node, $"{where} must be a mapping with keys {string.Join(", ", s_experimentKeys)}");
                return null;
            }
            var keys = Keys(map, s_experimentKeys, where);
            var given = new HashSet<string>(givenDefaults, StringComparer.Ordinal);
            var settings = keys.TryGetValue("settings", out var settingsNode) ? ApplySettings(defaults, settingsNode, $"{where} settings", given) : defaults;

            var prompts = Prompts(keys, map, where, promptDir, available, promptTexts);

            var varied = new List<VariedSetting>();
            if (keys.TryGetValue("vary", out var vary) && keys.TryGetValue("grid", out var gridToo))
                Error(gridToo, $"{where} has both `vary` and `grid`; use `vary` for one setting or `grid` for the cartesian product of several");
            else if (keys.TryGetValue("vary", out vary))
            {
                varied.AddRange(Varied(vary, $"{where} vary"));
                if (varied.Count > 1)
                    Error(vary, $"`vary` takes one setting, this one has {varied.Count} ({string.Join(", ", varied.Select(v => v.Key))}); use `grid:` for the cartesian product of several settings");
            }
            else if (keys.TryGetValue("grid", out var grid))
                varied.AddRange(Varied(grid, $"{where} grid"));

            var reference = Reference(keys, map, where, varied, settings);
            return new ExperimentDefinition
            {
                Name = name,
                Description = Scalar(keys, "description")?.Value,
                Prompts = prompts,
                Base = settings,
                Given = given,
                Varied = varied,
                Reference = reference,
            };
        }

        private List<string> Prompts(Dictionary<string, YamlNode> keys, YamlMappingNode map, string where, string promptDir,
            string[] available, Dictionary<string, string> texts)
        {
            var names = new List<string>();
            if (!keys.TryGetValue("prompts", out var node))
            {
                Error(map, $"{where} has no `prompts:`; name the prompt files to use, e.g. `prompts: [panda_guitar]`{AvailableList(available, promptDir)}");
                return names;
            }
            IEnumerable<(string Name, YamlNode Node)> items;
            if (node is YamlScalarNode { Value: "all" })
                items = available.Select(a => (a, node));
            else if (node is YamlSequenceNode seq && seq.Children.All(c => c is YamlScalarNode))
                items = seq.Children.Select(c => (((YamlScalarNode)c).Value ?? "", c));
            else if (node is YamlScalarNode { Value: { Length: > 0 } single })
                items = [(single, node)];
            else
            {
                Error(node, $"`prompts` must be a list of prompt names (files NAME.txt in {promptDir}) or `all`");
                return names;
            }
            if (node is YamlSequenceNode { Children.Count: > (int)MaxJobs } tooMany)
            {
                Error(node, $"`prompts` lists {tooMany.Children.Count} prompts; a spec may plan at most {MaxJobs} videos");
                return names;
            }
            var listed = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (name, item) in items)
            {
                if (!listed.Add(name))
                {
                    Error(item, $"prompt '{name}' is listed twice in {where} (its outputs would collide)");
                    continue;
                }
                var file = Path.Combine(promptDir, name + ".txt");
                if (!SafeName().IsMatch(name) || !System.IO.File.Exists(file))
                {
                    Error(item, $"unknown prompt '{name}' (no file {file}){AvailableList(available, promptDir)}");
                    continue;
                }
                if (!texts.ContainsKey(name))
                {
                    // The text encoder reads 226 tokens; a prompt file of megabytes is a mistake, not a prompt.
                    if (new FileInfo(file).Length > MaxPromptBytes)
                    {
                        Error(item, $"prompt file {file} is {new FileInfo(file).Length} bytes; a prompt file may be at most {MaxPromptBytes} bytes");
                        continue;
                    }
                    var text = System.IO.File.ReadAllText(file).Trim();
                    if (text.Length == 0)
                    {
                        Error(item, $"prompt file {file} is empty; write the prompt text in it");
                        continue;
                    }
                    texts[name] = text;
                }
                names.Add(name);
            }
            if (names.Count == 0 && node is YamlSequenceNode { Children.Count: 0 })
                Error(node, $"{where} lists no prompts{AvailableList(available, promptDir)}");
            return names;
        }

        private IEnumerable<VariedSetting> Varied(YamlNode node, string where)
        {
            if (node is not YamlMappingNode map || map.Children.Count == 0)
            {
                Error(node, $"{where} must map a setting to a list of values, e.g. `{{ guidance: [1, 6, 12] }}`; settings: {KeyList()}");
                yield break;
            }
            foreach (var (key, valuesNode) in SettingEntries(map, where))
            {
                if (!key.CanVary)
                {
                    Error(valuesNode, $"{key.Name} cannot be varied: where a video is rendered does not change it (use --devices to spread a run over GPUs)");
                    continue;
                }
                if (valuesNode is not YamlSequenceNode seq || seq.Children.Count == 0)
                {
                    Error(valuesNode, $"{where}: {key.Name} must be a list of values, e.g. [a, b]; each {key.Allowed}");
                    continue;
                }
                if (seq.Children.Count > MaxJobs)
                {
                    Error(valuesNode, $"{where}: {key.Name} lists {seq.Children.Count} values; a spec may plan at most {MaxJobs} videos");
                    continue;
                }
                var values = new List<SettingValue>();
                // By output name: values that differ only where names cannot (punctuation, case of a hash) would collide.
                var names = new HashSet<string>(StringComparer.Ordinal);
                foreach (var item in seq.Children)
                {
                    if (ParseValue(key, item) is not { } v) continue;
                    var name = StudyPlan.ValueName(v);
                    if (!names.Add(name))
                    {
                        Error(item, $"{key.Name} value {Shorten(v.Text)} is listed twice in {where}: both would be written to {name}.mp4");
                        continue;
                    }
                    values.Add(v);
                }
                yield return new VariedSetting(key.Name, values);
            }
        }

        private List<SettingValue> Reference(Dictionary<string, YamlNode> keys, YamlMappingNode map, string where,
            List<VariedSetting> varied, GenerationSettings settings)
        {
            var reference = new List<SettingValue>();
            keys.TryGetValue("reference", out var node);
            if (varied.Count == 0)
            {
                if (node is not null) Error(node, $"{where} varies nothing, so it has no reference; remove `reference` or add `vary:`");
                return reference;
            }
            var given = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
            if (node is YamlScalarNode && varied.Count == 1)
                given[varied[0].Key] = node;
            else if (node is YamlMappingNode refMap)
            {
                foreach (var (k, v) in refMap.Children)
                {
                    if (k is not YamlScalarNode)
                    {
                        Error(k, $"reference is keyed by setting names, not a {Describe(k)}; {where} varies {string.Join(", ", varied.Select(x => x.Key))}");
                        continue;
                    }
                    var key = ((YamlScalarNode)k).Value ?? "";
                    if (varied.All(x => x.Key != key))
                        Error(k, $"reference names '{key}', which {where} does not vary; it varies {string.Join(", ", varied.Select(x => x.Key))}");
                    else given[key] = v;
                }
            }
            else if (node is not null)
                Error(node, varied.Count == 1
                    ? $"reference must be one of the {varied[0].Key} values ({string.Join(", ", varied[0].Values.Select(v => v.Text))})"
                    : $"reference must map each grid setting to one of its values, e.g. {{ {string.Join(", ", varied.Select(v => $"{v.Key}: {v.Values.FirstOrDefault()?.Text}"))} }}");

            foreach (var v in varied)
            {
                var key = SettingKey.Find(v.Key)!;
                if (given.TryGetValue(v.Key, out var valueNode))
                {
                    if (ParseValue(key, valueNode) is not { } parsed) continue;
                    var match = v.Values.FirstOrDefault(x => x.Text == parsed.Text);
                    if (match is null)
                        Error(valueNode, $"reference {v.Key} {parsed.Text} is not one of the values it varies over ({string.Join(", ", v.Values.Select(x => x.Text))})");
                    else reference.Add(match);
                }
                else
                {
                    // Unnamed: the experiment's own setting, when it is one of the values.
                    // By the text as written, or by the value (paths resolved against the spec's folder).
                    var current = key.Read(settings);
                    var match = v.Values.FirstOrDefault(x => x.Text == current || SettingKey.Format(x.Value) == current);
                    if (match is null)
                        Error(node ?? map, $"{where} needs a reference for {v.Key} (the video the difference metrics compare with): add `reference: {{ {v.Key}: X }}` with X one of {string.Join(", ", v.Values.Select(x => x.Text))}");
                    else reference.Add(match);
                }
            }
            return reference;
        }

        private static string AvailableList(string[] available, string promptDir) =>
            available.Length == 0 ? $"; there are no prompt files (*.txt) in {promptDir}" : $"; available: {string.Join(", ", available)}";

        private static string KeyList() => string.Join(", ", SettingKey.All.Select(k => k.Name));

        /// <summary>A value short enough to quote in a message.</summary>
        public static string Shorten(string text) => text.Length <= 60 ? text : text[..57] + "…";

        public static string Describe(YamlNode node) => node switch
        {
            YamlMappingNode => "mapping",
            YamlSequenceNode => "list",
            _ => "value",
        };

        private static string Suggest(string key, IEnumerable<string> allowed)
        {
            var best = allowed.Select(a => (a, d: Distance(key.ToLowerInvariant(), a))).OrderBy(x => x.d).FirstOrDefault();
            return best.a is not null && best.d <= 2 ? $" (did you mean '{best.a}'?)" : "";
        }

        private static int Distance(string a, string b)
        {
            var d = new int[a.Length + 1, b.Length + 1];
            for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
            for (int j = 0; j <= b.Length; j++) d[0, j] = j;
            for (int i = 1; i <= a.Length; i++)
                for (int j = 1; j <= b.Length; j++)
                    d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            return d[a.Length, b.Length];
        }
    }
}

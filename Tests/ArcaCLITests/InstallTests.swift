import ArcaTesting
import Foundation
import Testing

/// The service installation: deploy/arca.service, deploy/arca.env.example
/// and scripts/install.sh, run for real (staged with --root, and as a real
/// install in a private mount namespace where the machine allows one).
@Suite struct InstallTests {
    static let root = TestPaths.packageRoot
    static let script = root + "/scripts/install.sh"
    static let unit = root + "/deploy/arca.service"
    static let template = root + "/deploy/arca.env.example"

    static let systemdAnalyze: String? = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }
    static let noSystemdAnalyze = "systemd-analyze is not installed on this machine (Debian: apt-get install systemd)"

    /// Whether this process may make a private mount namespace with overlays
    /// over /etc, /usr/local and /var/lib (root, unshare, overlayfs).
    static let namespaceProblem: String? = {
        guard getuid() == 0 else { return "a real install needs root; the staged (--root) tests cover the files" }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else { return "unshare (util-linux) is not installed" }
        let probe = TestPaths.temporaryDirectory("overlay-probe")
        defer { try? FileManager.default.removeItem(atPath: probe) }
        let output = try? Tool.capture("/usr/bin/unshare", ["-m", "--propagation", "private", "sh", "-c", """
            mkdir -p "$1/up" "$1/work" && mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/up,workdir=$1/work" /etc
            """, "probe", probe])
        return output?.status == 0 ? nil : "this machine does not allow overlay mounts in a private mount namespace: \(output?.stderr ?? "unshare failed")"
    }()

    func install(_ arguments: [String], environment: [String: String] = [:]) throws -> Tool.Output {
        try Tool.capture("/bin/bash", [Self.script] + arguments, environment: environment)
    }

    func mode(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? nil
    }

    func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// The [Service] section's settings, in order (a key may repeat).
    func serviceSettings(_ text: String) -> [(key: String, value: String)] {
        var section = "", settings: [(String, String)] = []
        for line in text.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if line.hasPrefix("[") { section = line; continue }
            guard section == "[Service]", !line.hasPrefix("#"), let equals = line.firstIndex(of: "=") else { continue }
            settings.append((String(line[..<equals]), String(line[line.index(after: equals)...])))
        }
        return settings
    }

    // MARK: - The unit

    /// `systemd-analyze verify` on the unit as kept in the repository, its
    /// ExecStart pointed at the built arca (verify checks that it exists).
    @Test(.enabled(if: systemdAnalyze != nil, Comment(rawValue: noSystemdAnalyze)))
    func unitPassesSystemdAnalyzeVerify() throws {
        let unit = try #require(read(Self.unit))
        #expect(unit.contains("\nExecStart=/usr/local/bin/arca start "))
        let directory = TestPaths.temporaryDirectory("unit-verify")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let copy = directory + "/arca.service"
        try unit.replacingOccurrences(of: "\nExecStart=/usr/local/bin/arca ", with: "\nExecStart=\(TestPaths.arca) ")
            .write(toFile: copy, atomically: true, encoding: .utf8)
        let verify = try Tool.capture(try #require(Self.systemdAnalyze), ["verify", copy])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stderr.isEmpty && verify.stdout.isEmpty, "systemd-analyze verify complained: \(verify.stderr)\(verify.stdout)")

        // And it does fail on a unit whose program is missing: the check is real.
        try unit.write(toFile: copy, atomically: true, encoding: .utf8)
        if !exists("/usr/local/bin/arca") {
            let missing = try Tool.capture(try #require(Self.systemdAnalyze), ["verify", copy])
            #expect(missing.status != 0 && missing.stderr.contains("/usr/local/bin/arca"), "\(missing.stderr)")
        }
    }

    @Test func unitRunsArcaStartHardened() throws {
        let settings = serviceSettings(try #require(read(Self.unit)))
        func value(_ key: String) -> String? { settings.last { $0.key == key }?.value }
        #expect(value("ExecStart")?.hasPrefix("/usr/local/bin/arca start") == true)
        #expect(value("User") == "arca" && value("Group") == "arca")
        #expect(value("EnvironmentFile") == "/etc/arca/arca.env")
        #expect(settings.contains { $0.key == "Environment" && $0.value == "ARCA_REPO=/var/lib/arca" })
        #expect(value("WorkingDirectory") == "/var/lib/arca")
        #expect(value("ReadWritePaths") == "/var/lib/arca")
        #expect(value("Restart") == "on-failure" && value("RestartSec") != nil)
        #expect(value("KillSignal") == "SIGTERM")
        #expect(Int(value("TimeoutStopSec") ?? "") ?? 0 >= 120, "a cancelled backup needs time to abort its upload")
        #expect(value("CapabilityBoundingSet") == "")
        #expect(value("UMask") == "0077")
        #expect(value("SystemCallArchitectures") == "native")
        for hardening in [
            "NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules",
            "ProtectControlGroups", "RestrictSUIDSGID", "LockPersonality", "RestrictRealtime", "RestrictNamespaces",
        ] {
            #expect(value(hardening) == "yes", "\(hardening)")
        }
        #expect(value("ProtectSystem") == "strict")
        // arca needs the network: PostgreSQL (TCP or its unix socket), S3, its API.
        let families = Set((value("RestrictAddressFamilies") ?? "").split(separator: " ").map(String.init))
        #expect(families.isSuperset(of: ["AF_UNIX", "AF_INET", "AF_INET6"]))
        #expect(value("PrivateNetwork") != "yes" && value("IPAddressDeny") == nil)
    }

    // MARK: - The settings template

    /// Every setting README's table (and its cloud storage paragraph) names
    /// is in the template, commented out; nothing in it is set.
    @Test func envTemplateCommentsEverySettingTheReadmeLists() throws {
        let readme = try #require(read(Self.root + "/README.md"))
        let template = try #require(read(Self.template))
        var settings = Set<String>()
        for line in readme.split(separator: "\n") where line.hasPrefix("| `") {
            let cell = line.dropFirst(3).prefix { $0 != "`" }
            if cell.allSatisfy({ $0.isUppercase || $0.isNumber || $0 == "_" }) { settings.insert(String(cell)) }
        }
        settings.formUnion(["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "ARCA_S3_ADDRESSING"])
        #expect(settings.count > 40, "README's table of settings was not found")
        settings.remove("ARCA_REPO")  // set by the unit, explained in the template's header
        for setting in settings.sorted() {
            #expect(template.contains("\n#\(setting)="), "\(setting) is missing from deploy/arca.env.example")
        }
        let assignments = template.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        #expect(assignments.isEmpty, "the template sets something: \(assignments)")
    }

    // MARK: - install.sh

    /// A staged install (--root), a second run (an upgrade) that keeps the
    /// edited settings and replaces the binary, an uninstall that keeps the
    /// settings and repository, and a purge.
    @Test func stagedInstallUpgradeUninstallAndPurge() throws {
        let stage = TestPaths.temporaryDirectory("install-root")
        defer { try? FileManager.default.removeItem(atPath: stage) }
        let binary = stage + "/usr/local/bin/arca", unit = stage + "/etc/systemd/system/arca.service"
        let env = stage + "/etc/arca/arca.env", state = stage + "/var/lib/arca"

        let first = try install(["--root", stage, "--binary", TestPaths.arca])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(mode(binary) == 0o755)
        #expect(FileManager.default.contentsEqual(atPath: binary, andPath: TestPaths.arca))
        #expect(mode(unit) == 0o644)
        #expect(read(unit)?.contains("\nExecStart=/usr/local/bin/arca start $ARCA_START_OPTIONS\n") == true, "the unit names the final path, not the stage")
        #expect(mode(env) == 0o600)
        #expect(read(env) == read(Self.template))
        #expect(mode(stage + "/etc/arca") == 0o750)
        #expect(mode(state) == 0o700)
        #expect(first.stdout.contains("systemctl daemon-reload && systemctl enable --now arca"), "\(first.stdout)")
        if Self.systemdAnalyze != nil {
            #expect(first.stdout.contains("systemd-analyze verify: the unit is valid"), "\(first.stdout)")
        }

        // The operator sets a secret and loosens the mode; the binary is damaged.
        let edited = try #require(read(env)) + "DATABASE_URL=postgresql://backup:s3cret@db.internal/medical\n"
        try edited.write(toFile: env, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: env)
        try Data("not arca".utf8).write(to: URL(fileURLWithPath: binary))
        let second = try install(["--root", stage, "--binary", TestPaths.arca])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(read(env) == edited, "the second run rewrote the operator's settings")
        #expect(mode(env) == 0o600)
        #expect(second.stdout.contains("kept your settings"))
        #expect(!(second.stdout + second.stderr).contains("s3cret"))
        #expect(FileManager.default.contentsEqual(atPath: binary, andPath: TestPaths.arca))
        #expect(try FileManager.default.contentsOfDirectory(atPath: stage + "/usr/local/bin") == ["arca"], "a temporary file was left")

        let uninstall = try install(["--root", stage, "--uninstall"])
        #expect(uninstall.status == 0, "\(uninstall.stderr)")
        #expect(!exists(binary) && !exists(unit))
        #expect(read(env) == edited && exists(state))
        #expect(uninstall.stdout.contains("kept") && uninstall.stdout.contains("--purge"), "\(uninstall.stdout)")

        let purge = try install(["--root", stage, "--uninstall", "--purge"])
        #expect(purge.status == 0, "\(purge.stderr)")
        #expect(!exists(stage + "/etc/arca") && !exists(state))
    }

    @Test func prefixMovesTheBinaryAndTheUnitFollows() throws {
        let stage = TestPaths.temporaryDirectory("install-prefix")
        defer { try? FileManager.default.removeItem(atPath: stage) }
        let result = try install(["--root", stage, "--prefix", "/opt/arca", "--binary", TestPaths.arca])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(exists(stage + "/opt/arca/bin/arca") && !exists(stage + "/usr/local/bin/arca"))
        #expect(read(stage + "/etc/systemd/system/arca.service")?.contains("\nExecStart=/opt/arca/bin/arca start ") == true)
    }

    @Test func wrongArgumentsAreRefusedWithWhatToDo() throws {
        let stage = TestPaths.temporaryDirectory("install-refused")
        defer { try? FileManager.default.removeItem(atPath: stage) }
        let unknown = try install(["--root", stage, "--frobnicate"])
        #expect(unknown.status == 2 && unknown.stderr.contains("unknown argument: --frobnicate") && unknown.stderr.contains("--help"))
        let purge = try install(["--root", stage, "--purge"])
        #expect(purge.status == 2 && purge.stderr.contains("--purge only goes with --uninstall"), "\(purge.stderr)")
        let prefix = try install(["--root", stage, "--prefix", "/opt/a b;rm", "--binary", TestPaths.arca])
        #expect(prefix.status == 1 && prefix.stderr.contains("--prefix must be an absolute path"), "\(prefix.stderr)")
        let relative = try install(["--root", stage, "--prefix", "opt", "--binary", TestPaths.arca])
        #expect(relative.status == 1, "\(relative.stderr)")
        let notArca = try install(["--root", stage, "--binary", "/bin/true"])
        #expect(notArca.status == 1 && notArca.stderr.contains("did not print a version"), "\(notArca.stderr)")
        let missing = try install(["--root", stage, "--binary", stage + "/nothing"])
        #expect(missing.status == 1 && missing.stderr.contains("is not an executable file"), "\(missing.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: stage).isEmpty, "a refused run wrote something")
    }

    /// Without --root, a user other than root is told to use root, before
    /// anything is written. (As root, the test drops to nobody with setpriv.)
    @Test func realInstallNeedsRoot() throws {
        // A copy nobody can read, wherever the checkout is.
        let copy = TestPaths.temporaryDirectory("install-copy")
        defer { try? FileManager.default.removeItem(atPath: copy) }
        for folder in ["scripts", "deploy"] { try FileManager.default.createDirectory(atPath: copy + "/" + folder, withIntermediateDirectories: true) }
        for file in ["scripts/install.sh", "deploy/arca.service", "deploy/arca.env.example"] {
            try FileManager.default.copyItem(atPath: Self.root + "/" + file, toPath: copy + "/" + file)
        }
        try Tool.run("chmod", ["-R", "a+rX", copy])
        let command = getuid() == 0
            ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/bash", copy + "/scripts/install.sh", "--binary", "/bin/true"]
            : ["/bin/bash", copy + "/scripts/install.sh", "--binary", "/bin/true"]
        let result = try Tool.capture(command[0], Array(command.dropFirst()))
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("this must run as root") && result.stderr.contains("--root DIR"), "\(result.stderr)")
    }

    /// The real thing, as root, in a private mount namespace whose /etc,
    /// /usr/local and /var/lib are overlays (the machine is not changed): the
    /// arca user is created, ownership and modes are set, a second run keeps
    /// the settings, uninstall and purge remove what they say. systemd is
    /// not PID 1 in a namespace, so the script must say what to run instead.
    @Test(.enabled(if: namespaceProblem == nil, Comment(rawValue: namespaceProblem ?? "")))
    func realInstallInAPrivateMountNamespace() throws {
        let layers = TestPaths.temporaryDirectory("install-overlay")
        defer { try? FileManager.default.removeItem(atPath: layers) }
        let run = """
            set -eu
            for d in etc usr/local var/lib; do
              n=$(printf %s "$d" | tr / _); mkdir -p "$LAYERS/$n/up" "$LAYERS/$n/work"
              mount -t overlay overlay -o "lowerdir=/$d,upperdir=$LAYERS/$n/up,workdir=$LAYERS/$n/work" "/$d"
            done
            report() { stat -c '%a %U:%G %n' "$@"; }
            echo '== first'; bash "$SCRIPT" --binary "$ARCA"
            report /usr/local/bin/arca /var/lib/arca /etc/arca /etc/arca/arca.env /etc/systemd/system/arca.service
            getent passwd arca
            echo 'DATABASE_URL=dbname=edited' >>/etc/arca/arca.env
            echo '== second'; bash "$SCRIPT" --binary "$ARCA"
            grep -c '^DATABASE_URL=dbname=edited$' /etc/arca/arca.env
            getent passwd arca | wc -l
            echo '== uninstall'; bash "$SCRIPT" --uninstall
            test ! -e /usr/local/bin/arca && test ! -e /etc/systemd/system/arca.service && echo removed
            test -f /etc/arca/arca.env && test -d /var/lib/arca && echo kept
            echo '== purge'; bash "$SCRIPT" --uninstall --purge
            test ! -e /etc/arca && test ! -e /var/lib/arca && echo purged
            getent passwd arca || echo 'no arca user'
            """
        let result = try Tool.capture(
            "/usr/bin/unshare", ["-m", "--propagation", "private", "sh", "-c", run],
            environment: ["LAYERS": layers, "SCRIPT": Self.script, "ARCA": TestPaths.arca])
        #expect(result.status == 0, "\(result.stderr)\n\(result.stdout)")
        let out = result.stdout
        for line in [
            "755 root:root /usr/local/bin/arca", "700 arca:arca /var/lib/arca", "750 root:arca /etc/arca",
            "600 root:root /etc/arca/arca.env", "644 root:root /etc/systemd/system/arca.service",
            "arca:x:", ":/var/lib/arca:/usr/sbin/nologin", "created the system user arca", "kept your settings",
            "systemctl daemon-reload && systemctl enable --now arca", "removed\n", "kept\n", "purged\n", "no arca user",
        ] {
            #expect(out.contains(line), "missing '\(line)' in:\n\(out)")
        }
        #expect(out.components(separatedBy: "created the system user").count == 2, "the user was created twice")
    }
}

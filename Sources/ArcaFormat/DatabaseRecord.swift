import Foundation

extension Manifest {
    /// The backed-up database itself, as `CREATE DATABASE` and the `ALTER
    /// DATABASE` statements after it need it (FORMAT.md, "Database").
    public struct Database: Codable, Sendable, Equatable {
        public var encoding: String
        public var collate: String
        public var ctype: String
        /// `libc`, `icu` or `builtin`.
        public var localeProvider: String
        /// The ICU locale (provider `icu`) or the builtin locale (`builtin`).
        public var locale: String?
        /// ICU tailoring rules (PostgreSQL 16 and later).
        public var icuRules: String?
        public var owner: String
        public var comment: String?
        public var connectionLimit: Int
        public var allowConnections: Bool
        public var isTemplate: Bool
        /// The database's privileges; nil: the default ones (`datacl` NULL).
        public var privileges: [Privilege]?
        /// `ALTER DATABASE … SET` (no role) and `ALTER ROLE … IN DATABASE … SET`.
        public var settings: [Setting]
        public var securityLabels: [SecurityLabel]
        /// Names of the extensions installed in the database, which the
        /// schema creates and the target server must provide.
        public var extensions: [String]

        public init(
            encoding: String, collate: String, ctype: String, localeProvider: String, locale: String? = nil, icuRules: String? = nil,
            owner: String, comment: String? = nil, connectionLimit: Int = -1, allowConnections: Bool = true, isTemplate: Bool = false,
            privileges: [Privilege]? = nil, settings: [Setting] = [], securityLabels: [SecurityLabel] = [], extensions: [String] = []
        ) {
            self.encoding = encoding
            self.collate = collate
            self.ctype = ctype
            self.localeProvider = localeProvider
            self.locale = locale
            self.icuRules = icuRules
            self.owner = owner
            self.comment = comment
            self.connectionLimit = connectionLimit
            self.allowConnections = allowConnections
            self.isTemplate = isTemplate
            self.privileges = privileges
            self.settings = settings
            self.securityLabels = securityLabels
            self.extensions = extensions
        }

        /// One privilege on the database: `grantee` nil is PUBLIC.
        public struct Privilege: Codable, Sendable, Equatable, Hashable {
            public var grantee: String?
            /// `CONNECT`, `TEMPORARY` or `CREATE`.
            public var privilege: String
            public var grantable: Bool
            public init(grantee: String?, privilege: String, grantable: Bool) {
                self.grantee = grantee
                self.privilege = privilege
                self.grantable = grantable
            }

            public static let names: Set<String> = ["CONNECT", "TEMPORARY", "CREATE"]
        }

        /// A configuration setting of the database, or of one role in it.
        public struct Setting: Codable, Sendable, Equatable, Hashable {
            public var role: String?
            public var name: String
            /// As the server stores it (`pg_db_role_setting`).
            public var value: String
            public init(role: String?, name: String, value: String) {
                self.role = role
                self.name = name
                self.value = value
            }
        }

        public struct SecurityLabel: Codable, Sendable, Equatable, Hashable {
            public var provider: String
            public var label: String
            public init(provider: String, label: String) {
                self.provider = provider
                self.label = label
            }
        }

        public static let localeProviders: Set<String> = ["libc", "icu", "builtin"]
    }

    /// A role the database refers to, with its attributes and memberships
    /// (FORMAT.md, "Roles").
    public struct Role: Codable, Sendable, Equatable {
        public var name: String
        /// Why the database needs the role: `owner`, `grantee` and `policy`
        /// (of objects in the schema), `databaseOwner`, `databaseGrantee`,
        /// `setting`; empty for a role recorded only for its memberships.
        public var references: [String]
        public var superuser: Bool
        public var inherit: Bool
        public var createRole: Bool
        public var createDatabase: Bool
        public var login: Bool
        public var replication: Bool
        public var bypassRowSecurity: Bool
        public var connectionLimit: Int
        /// The `VALID UNTIL` timestamp as the server printed it (ISO, UTC).
        public var validUntil: String?
        /// The password hash; only with `--with-role-passwords`, only in an
        /// encrypted archive. Never shown.
        public var passwordHash: String?
        /// The recorded roles this role is a member of.
        public var memberOf: [Membership]

        public init(
            name: String, references: [String] = [], superuser: Bool = false, inherit: Bool = true, createRole: Bool = false,
            createDatabase: Bool = false, login: Bool = false, replication: Bool = false, bypassRowSecurity: Bool = false,
            connectionLimit: Int = -1, validUntil: String? = nil, passwordHash: String? = nil, memberOf: [Membership] = []
        ) {
            self.name = name
            self.references = references
            self.superuser = superuser
            self.inherit = inherit
            self.createRole = createRole
            self.createDatabase = createDatabase
            self.login = login
            self.replication = replication
            self.bypassRowSecurity = bypassRowSecurity
            self.connectionLimit = connectionLimit
            self.validUntil = validUntil
            self.passwordHash = passwordHash
            self.memberOf = memberOf
        }

        public struct Membership: Codable, Sendable, Equatable {
            public var role: String
            public var admin: Bool
            public init(role: String, admin: Bool) {
                self.role = role
                self.admin = admin
            }
        }

        public static let referenceKinds: Set<String> = ["owner", "grantee", "policy", "databaseOwner", "databaseGrantee", "setting"]

        /// The same role without its password hash: what is shown.
        public var withoutPassword: Role {
            var role = self
            role.passwordHash = nil
            return role
        }
    }

    /// The manifest as it may be shown (`inspect --json`): no password hash.
    public var withoutPasswords: Manifest {
        var manifest = self
        manifest.roles = roles?.map(\.withoutPassword)
        return manifest
    }
}

/// The checks of FORMAT.md on the `database` and `roles` sections: every
/// name and value a restore puts into SQL (always quoted) is bounded and
/// of the shape the server itself would have produced.
enum DatabaseRecordValidation {
    /// PostgreSQL's names are at most NAMEDATALEN - 1 = 63 bytes.
    static let maximumNameBytes = 63
    static let maximumLocaleBytes = 256
    static let maximumTextBytes = 1 << 20

    static func validate(_ database: Manifest.Database?, _ roles: [Manifest.Role]?) throws {
        func fail(_ detail: String) -> ArchiveError { .invalidManifest(detail) }
        if let database {
            try text(database.encoding, "database.encoding", limit: maximumNameBytes, empty: false)
            try text(database.collate, "database.collate", limit: maximumLocaleBytes, empty: false)
            try text(database.ctype, "database.ctype", limit: maximumLocaleBytes, empty: false)
            guard Manifest.Database.localeProviders.contains(database.localeProvider) else {
                throw fail("database.localeProvider is not one of libc, icu, builtin")
            }
            if database.localeProvider != "libc", database.locale == nil {
                throw fail("database.locale is missing for locale provider \(database.localeProvider)")
            }
            if let locale = database.locale { try text(locale, "database.locale", limit: maximumLocaleBytes, empty: false) }
            if let rules = database.icuRules { try text(rules, "database.icuRules", limit: maximumTextBytes) }
            try name(database.owner, "database.owner")
            if let comment = database.comment { try text(comment, "database.comment", limit: maximumTextBytes) }
            guard database.connectionLimit >= -1, database.connectionLimit <= Int(Int32.max) else {
                throw fail("database.connectionLimit is \(database.connectionLimit)")
            }
            for privilege in database.privileges ?? [] {
                if let grantee = privilege.grantee { try name(grantee, "a grantee in database.privileges") }
                guard Manifest.Database.Privilege.names.contains(privilege.privilege) else {
                    throw fail("database.privileges holds an unknown privilege")
                }
            }
            for setting in database.settings {
                if let role = setting.role { try name(role, "a role in database.settings") }
                guard isSettingName(setting.name) else { throw fail("database.settings holds a malformed setting name") }
                try text(setting.value, "a value in database.settings", limit: maximumTextBytes)
            }
            for label in database.securityLabels {
                try name(label.provider, "a provider in database.securityLabels")
                try text(label.label, "a label in database.securityLabels", limit: maximumTextBytes)
            }
            for extensionName in database.extensions { try name(extensionName, "an entry of database.extensions") }
        }
        var names = Set<String>()
        for role in roles ?? [] {
            try name(role.name, "a role name")
            guard names.insert(role.name).inserted else { throw fail("a role appears twice in roles") }
            guard role.references.allSatisfy(Manifest.Role.referenceKinds.contains) else {
                throw fail("a role's references hold an unknown kind")
            }
            guard role.connectionLimit >= -1, role.connectionLimit <= Int(Int32.max) else {
                throw fail("a role's connectionLimit is \(role.connectionLimit)")
            }
            if let validUntil = role.validUntil { try text(validUntil, "a role's validUntil", limit: 64, empty: false) }
            // The hash's content is never named in an error.
            if let hash = role.passwordHash { try text(hash, "a role's passwordHash", limit: 1024, empty: false) }
        }
        for role in roles ?? [] where role.memberOf.contains(where: { !names.contains($0.role) || $0.role == role.name }) {
            throw fail("a role's memberOf names a role that is not recorded, or itself")
        }
    }

    /// A role, provider or extension name: 1 to 63 bytes, no NUL.
    static func name(_ value: String, _ field: String) throws {
        try text(value, field, limit: maximumNameBytes, empty: false)
    }

    /// No NUL (a C string would cut the SQL short) and at most `limit` bytes.
    static func text(_ value: String, _ field: String, limit: Int, empty: Bool = true) throws {
        let bytes = value.utf8
        guard bytes.count <= limit, empty || !bytes.isEmpty, !bytes.contains(0) else {
            throw ArchiveError.invalidManifest("\(field) is empty, longer than \(limit) bytes or holds a NUL")
        }
    }

    /// `name` or `prefix.name`: what a configuration parameter's name looks like.
    static func isSettingName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= maximumNameBytes * 2 + 1 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { part in
            guard let first = part.unicodeScalars.first, first.isASCII, first == "_" || first.properties.isAlphabetic else { return false }
            return part.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || $0 == "$" || $0.properties.isAlphabetic || ("0"..."9").contains($0)) }
        }
    }
}

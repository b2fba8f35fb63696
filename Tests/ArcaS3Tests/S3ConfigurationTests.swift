import ArcaTesting
import Foundation
import Testing
@testable import ArcaS3

@Suite("S3 configuration")
struct S3ConfigurationTests {
    let keys = ["AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEYID", "AWS_SECRET_ACCESS_KEY": "very-secret-key"]

    @Test func absentBucketMeansNoS3() throws {
        #expect(try S3Configuration.fromEnvironment(keys) == nil)
        #expect(try S3Configuration.fromEnvironment(keys.merging(["AWS_S3_BUCKET": " "]) { $1 }) == nil)
    }

    @Test func awsDefaults() throws {
        let configuration = try #require(try S3Configuration.fromEnvironment(keys.merging(["AWS_S3_BUCKET": "backups"]) { $1 }))
        #expect(configuration.bucket == "backups")
        #expect(configuration.region == "us-east-1")
        #expect(configuration.endpoint == nil)
        #expect(configuration.addressing == .virtualHosted)
        #expect(configuration.prefix == "")
        #expect(configuration.sessionToken == nil)
    }

    @Test func everySetting() throws {
        let environment = keys.merging([
            "AWS_S3_BUCKET": "backups", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_SESSION_TOKEN": "session-token",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "ARCA_S3_PREFIX": "/prod/db1",
        ]) { $1 }
        let configuration = try #require(try S3Configuration.fromEnvironment(environment))
        #expect(configuration.region == "eu-west-1")
        #expect(configuration.endpoint == URL(string: "http://127.0.0.1:9000"))
        #expect(configuration.addressing == .path)
        #expect(configuration.prefix == "prod/db1/")
        #expect(configuration.sessionToken == "session-token")

        let regional = try #require(try S3Configuration.fromEnvironment(
            environment.merging(["AWS_REGION": "ap-south-1", "ARCA_S3_ADDRESSING": "virtual"]) { $1 }))
        #expect(regional.region == "ap-south-1")
        #expect(regional.addressing == .virtualHosted)
    }

    @Test func prefixNormalisation() {
        #expect(S3Configuration.normalizedPrefix("") == "")
        #expect(S3Configuration.normalizedPrefix("/") == "")
        #expect(S3Configuration.normalizedPrefix("a") == "a/")
        #expect(S3Configuration.normalizedPrefix("a/b//") == "a/b/")
    }

    @Test func missingKeysAreExplained() {
        #expect(throws: S3ConfigurationError.missingCredentials(bucket: "backups", missing: ["AWS_SECRET_ACCESS_KEY"])) {
            try S3Configuration.fromEnvironment(["AWS_S3_BUCKET": "backups", "AWS_ACCESS_KEY_ID": "AKIA1234"])
        }
        let error = S3ConfigurationError.missingCredentials(bucket: "backups", missing: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
        #expect(error.description.hasPrefix(
            "AWS_S3_BUCKET is set to 'backups' but AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"))
    }

    @Test(arguments: ["not a url", "ftp://host:21", "http://", "http://host:9000/?x=1", "127.0.0.1:9000"])
    func malformedEndpointsAreRejected(_ endpoint: String) {
        #expect(throws: S3ConfigurationError.malformedEndpoint(endpoint)) {
            try S3Configuration.fromEnvironment(keys.merging(["AWS_S3_BUCKET": "backups", "AWS_ENDPOINT_URL": endpoint]) { $1 })
        }
    }

    @Test func invalidBucketAndAddressing() {
        #expect(throws: S3ConfigurationError.invalidBucketName("Bad_Bucket")) {
            try S3Configuration.fromEnvironment(keys.merging(["AWS_S3_BUCKET": "Bad_Bucket"]) { $1 })
        }
        #expect(throws: S3ConfigurationError.invalidAddressing("sideways")) {
            try S3Configuration.fromEnvironment(keys.merging(["AWS_S3_BUCKET": "ok-bucket", "ARCA_S3_ADDRESSING": "sideways"]) { $1 })
        }
    }

    @Test func descriptionHidesSecrets() throws {
        let configuration = S3Configuration(
            bucket: "backups", accessKeyID: "AKIAEXAMPLEKEYID", secretAccessKey: "very-secret-key",
            sessionToken: "session-token-value")
        for text in [configuration.description, String(reflecting: configuration), "\(configuration)", dumped(configuration)] {
            #expect(!text.contains("very-secret-key"))
            #expect(!text.contains("session-token-value"))
            #expect(!text.contains("AKIAEXAMPLEKEYID"))
        }
        #expect(configuration.description.contains("AKIA…"))
        #expect(configuration.description.contains("backups"))
    }
}

@Suite("S3 XML and dates")
struct S3XMLTests {
    @Test func entitiesAndNamespacesInListings() throws {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <IsTruncated>false</IsTruncated>
              <Contents><Key>a &amp; b &lt;c&gt; &quot;d&quot; &#233;t&#xE9; 日本.txt</Key><Size>42</Size>
                <ETag>&quot;abc&quot;</ETag></Contents>
              <Contents><Key><![CDATA[x<y]]></Key><Size>0</Size></Contents>
            </ListBucketResult>
            """
        let root = try S3XML.parse(Array(xml.utf8))
        #expect(root.name == "ListBucketResult")
        let contents = root.children("Contents")
        #expect(contents.map { $0.value("Key") } == ["a & b <c> \"d\" été 日本.txt", "x<y"])
        #expect(contents.first?.value("ETag") == "\"abc\"")
        #expect(root.value("IsTruncated") == "false")
    }

    @Test func malformedXMLThrows() {
        #expect(throws: S3XML.ParseError.self) { try S3XML.parse(Array("<a><b></a>".utf8)) }
        #expect(throws: S3XML.ParseError.self) { try S3XML.parse([UInt8]()) }
    }

    @Test func errorDocument() throws {
        let document = try #require(S3ErrorDocument(body: Array("""
            <Error><Code>NoSuchKey</Code><Message>The key &amp; more</Message><RequestId>R1</RequestId></Error>
            """.utf8)))
        #expect(document.code == "NoSuchKey")
        #expect(document.message == "The key & more")
        #expect(document.requestID == "R1")
        #expect(S3ErrorDocument(body: Array("<CompleteMultipartUploadResult/>".utf8)) == nil)
    }

    @Test func escaping() {
        #expect(S3XML.escape("a&b<c>\"d\"'e'") == "a&amp;b&lt;c&gt;&quot;d&quot;&apos;e&apos;")
    }

    @Test func dates() {
        #expect(S3Date.parseISO8601("2009-10-12T17:50:30.000Z") == Date(timeIntervalSince1970: 1_255_369_830))
        #expect(S3Date.parseISO8601("2024-02-29T00:00:00Z") == Date(timeIntervalSince1970: 1_709_164_800))
        #expect(S3Date.parseRFC1123("Mon, 12 Oct 2009 17:50:30 GMT") == Date(timeIntervalSince1970: 1_255_369_830))
        #expect(S3Date.parseISO8601("yesterday") == nil)
        #expect(S3Date.parseRFC1123("Mon, 12 Foo 2009 17:50:30 GMT") == nil)
    }

    @Test func retryDelaysGrowAndStayCapped() {
        let policy = RetryPolicy(maxAttempts: 10, baseDelay: .milliseconds(200), maxDelay: .seconds(5))
        for attempt in 1...10 {
            let delay = policy.delay(afterAttempt: attempt)
            let ceiling = min(Duration.milliseconds(200) * (1 << (attempt - 1)), .seconds(5))
            #expect(delay >= ceiling / 2 && delay <= ceiling)
        }
        #expect(RetryPolicy.isRetryable(status: 503, code: "SlowDown"))
        #expect(RetryPolicy.isRetryable(status: 200, code: "InternalError"))
        #expect(RetryPolicy.isRetryable(status: 400, code: "RequestTimeout"))
        #expect(!RetryPolicy.isRetryable(status: 403, code: "AccessDenied"))
        #expect(!RetryPolicy.isRetryable(status: 404, code: nil))
    }
}

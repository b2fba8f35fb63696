import ArcaTesting
import Foundation
import Testing
@testable import ArcaS3

/// One case of AWS's Signature Version 4 test suite (aws-sig-v4-test-suite, 2015-08-30):
/// the request, and the canonical request, string to sign and signature AWS published.
struct SuiteVector: Sendable, CustomTestStringConvertible {
    var name: String
    var method = "GET"
    var path = "/"
    var query: [(name: String, value: String)] = []
    var headers: [(name: String, value: String)] = []
    var body = ""
    var sessionToken: String?
    var canonicalRequest: String
    var stringToSignHash: String
    var signedHeaders = "host;x-amz-date"
    var signature: String

    var testDescription: String { name }
}

private let suiteDate = Date(timeIntervalSince1970: 1_440_938_160)  // 20150830T123600Z
private let emptyHash = SigV4Signer.emptyPayloadHash
private let host = ("Host", "example.amazonaws.com")
private let stsToken = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

/// The canonical request of a suite case whose only headers are host and x-amz-date.
private func plainCanonical(_ method: String = "GET", path: String = "/", query: String = "") -> String {
    "\(method)\n\(path)\n\(query)\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\(emptyHash)"
}

private let unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

let sigV4SuiteVectors: [SuiteVector] = [
    SuiteVector(
        name: "get-vanilla", canonicalRequest: plainCanonical(),
        stringToSignHash: "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
        signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    SuiteVector(
        name: "get-vanilla-query", canonicalRequest: plainCanonical(),
        stringToSignHash: "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
        signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    SuiteVector(
        name: "get-vanilla-empty-query-key", query: [("Param1", "value1")],
        canonicalRequest: plainCanonical(query: "Param1=value1"),
        stringToSignHash: "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab",
        signature: "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"),
    SuiteVector(
        name: "get-vanilla-query-order-key", query: [("Param1", "value2"), ("Param1", "Value1")],
        canonicalRequest: plainCanonical(query: "Param1=Value1&Param1=value2"),
        stringToSignHash: "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
        signature: "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"),
    SuiteVector(
        name: "get-vanilla-query-order-key-case", query: [("Param2", "value2"), ("Param1", "value1")],
        canonicalRequest: plainCanonical(query: "Param1=value1&Param2=value2"),
        stringToSignHash: "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
        signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    SuiteVector(
        name: "get-vanilla-query-order-value", query: [("Param1", "value2"), ("Param1", "value1")],
        canonicalRequest: plainCanonical(query: "Param1=value1&Param1=value2"),
        stringToSignHash: "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
        signature: "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"),
    SuiteVector(
        name: "get-vanilla-query-unreserved", query: [(unreserved, unreserved)],
        canonicalRequest: plainCanonical(query: "\(unreserved)=\(unreserved)"),
        stringToSignHash: "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
        signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
    SuiteVector(
        name: "get-vanilla-utf8-query", query: [("\u{1234}", "bar")],
        canonicalRequest: plainCanonical(query: "%E1%88%B4=bar"),
        stringToSignHash: "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
        signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"),
    SuiteVector(
        name: "get-unreserved", path: "/\(unreserved)", canonicalRequest: plainCanonical(path: "/\(unreserved)"),
        stringToSignHash: "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
        signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"),
    SuiteVector(
        name: "get-utf8", path: "/\u{1234}", canonicalRequest: plainCanonical(path: "/%E1%88%B4"),
        stringToSignHash: "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
        signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    SuiteVector(
        name: "get-space", path: "/example space/", canonicalRequest: plainCanonical(path: "/example%20space/"),
        stringToSignHash: "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
        signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"),
    SuiteVector(
        name: "get-header-key-duplicate",
        headers: [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")],
        canonicalRequest: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n\(emptyHash)",
        stringToSignHash: "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
        signedHeaders: "host;my-header1;x-amz-date",
        signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"),
    SuiteVector(
        name: "get-header-value-order",
        headers: [("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2")],
        canonicalRequest: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value4,value1,value3,value2\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n\(emptyHash)",
        stringToSignHash: "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
        signedHeaders: "host;my-header1;x-amz-date",
        signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"),
    SuiteVector(
        name: "get-header-value-trim", headers: [("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
        canonicalRequest: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n\(emptyHash)",
        stringToSignHash: "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
        signedHeaders: "host;my-header1;my-header2;x-amz-date",
        signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
    SuiteVector(
        name: "post-vanilla", method: "POST", canonicalRequest: plainCanonical("POST"),
        stringToSignHash: "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
        signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    SuiteVector(
        name: "post-vanilla-query", method: "POST", query: [("Param1", "value1")],
        canonicalRequest: plainCanonical("POST", query: "Param1=value1"),
        stringToSignHash: "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
        signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"),
    SuiteVector(
        name: "post-header-key-case", method: "POST", canonicalRequest: plainCanonical("POST"),
        stringToSignHash: "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
        signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    SuiteVector(
        name: "post-header-key-sort", method: "POST", headers: [("My-Header1", "value1")],
        canonicalRequest: "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n\(emptyHash)",
        stringToSignHash: "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
        signedHeaders: "host;my-header1;x-amz-date",
        signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"),
    SuiteVector(
        name: "post-header-value-case", method: "POST", headers: [("My-Header1", "VALUE1")],
        canonicalRequest: "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n\(emptyHash)",
        stringToSignHash: "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
        signedHeaders: "host;my-header1;x-amz-date",
        signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"),
    SuiteVector(
        name: "post-x-www-form-urlencoded", method: "POST",
        headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "Param1=value1",
        canonicalRequest: "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
        stringToSignHash: "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
        signedHeaders: "content-type;host;x-amz-date",
        signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
    SuiteVector(
        name: "post-sts-header-before", method: "POST", sessionToken: stsToken,
        canonicalRequest: "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-security-token:\(stsToken)\n\nhost;x-amz-date;x-amz-security-token\n\(emptyHash)",
        stringToSignHash: "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
        signedHeaders: "host;x-amz-date;x-amz-security-token",
        signature: "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"),
]

@Suite("SigV4 signer")
struct SigV4SignerTests {
    @Test("AWS SigV4 test suite", arguments: sigV4SuiteVectors)
    func suiteVector(_ vector: SuiteVector) {
        let signer = SigV4Signer(
            credentials: AWSCredentials(
                accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                sessionToken: vector.sessionToken),
            region: "us-east-1", service: "service")
        let request = SigV4Request(
            method: vector.method, path: vector.path, query: vector.query, headers: [host] + vector.headers,
            payloadHash: Hashes.hex(Hashes.sha256(vector.body.utf8)))
        let signed = signer.sign(request, date: suiteDate, addContentSHA256Header: false)

        var beforeAuthorization = signed
        beforeAuthorization.headers.removeAll { $0.name == "authorization" }
        let canonical = signer.canonicalRequest(for: beforeAuthorization)
        #expect(canonical.text == vector.canonicalRequest)
        #expect(canonical.signedHeaders == vector.signedHeaders)
        #expect(
            signer.stringToSign(canonicalRequest: canonical.text, date: suiteDate)
                == "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\(vector.stringToSignHash)")
        #expect(
            signed.header("authorization")
                == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                + "SignedHeaders=\(vector.signedHeaders), Signature=\(vector.signature)")
        #expect(signed.header("x-amz-date") == "20150830T123600Z")
        #expect(signed.header("x-amz-security-token") == vector.sessionToken)
    }

    // MARK: The worked examples of the S3 documentation ("Signature Calculations for the
    // Authorization Header: Transferring Payload in a Single Chunk"), bucket examplebucket.

    static let s3Signer = SigV4Signer(
        credentials: AWSCredentials(
            accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1", service: "s3")
    static let s3Date = Date(timeIntervalSince1970: 1_369_353_600)  // 20130524T000000Z

    struct S3Example: Sendable, CustomTestStringConvertible {
        var name: String
        var method: String
        var path: String
        var query: [(name: String, value: String)] = []
        var headers: [(name: String, value: String)] = []
        var payload = ""
        var canonicalRequestHash: String
        var signedHeaders: String
        var signature: String
        var testDescription: String { name }
    }

    static let s3Examples: [S3Example] = [
        S3Example(
            name: "GET Object", method: "GET", path: "/test.txt", headers: [("Range", "bytes=0-9")],
            canonicalRequestHash: "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
            signedHeaders: "host;range;x-amz-content-sha256;x-amz-date",
            signature: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
        S3Example(
            name: "PUT Object", method: "PUT", path: "/test$file.text",
            headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
            payload: "Welcome to Amazon S3.",
            canonicalRequestHash: "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
            signedHeaders: "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
            signature: "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"),
        S3Example(
            name: "GET Bucket Lifecycle", method: "GET", path: "/", query: [("lifecycle", "")],
            canonicalRequestHash: "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
            signedHeaders: "host;x-amz-content-sha256;x-amz-date",
            signature: "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
        S3Example(
            name: "Get Bucket (List Objects)", method: "GET", path: "/", query: [("prefix", "J"), ("max-keys", "2")],
            canonicalRequestHash: "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
            signedHeaders: "host;x-amz-content-sha256;x-amz-date",
            signature: "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    ]

    @Test("S3 documentation examples", arguments: s3Examples)
    func s3Example(_ example: S3Example) {
        let request = SigV4Request(
            method: example.method, path: example.path, query: example.query,
            headers: [("Host", "examplebucket.s3.amazonaws.com")] + example.headers,
            payloadHash: Hashes.hex(Hashes.sha256(example.payload.utf8)))
        let signed = Self.s3Signer.sign(request, date: Self.s3Date, addContentSHA256Header: true)
        var beforeAuthorization = signed
        beforeAuthorization.headers.removeAll { $0.name == "authorization" }
        let canonical = Self.s3Signer.canonicalRequest(for: beforeAuthorization)
        #expect(Hashes.hex(Hashes.sha256(canonical.text.utf8)) == example.canonicalRequestHash)
        #expect(
            signed.header("authorization")
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                + "SignedHeaders=\(example.signedHeaders), Signature=\(example.signature)")
    }

    @Test func getObjectExampleCanonicalRequestAndSigningKey() {
        let request = SigV4Request(
            method: "GET", path: "/test.txt",
            headers: [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9")],
            payloadHash: SigV4Signer.emptyPayloadHash)
        var signed = Self.s3Signer.sign(request, date: Self.s3Date, addContentSHA256Header: true)
        signed.headers.removeAll { $0.name == "authorization" }
        let canonical = Self.s3Signer.canonicalRequest(for: signed).text
        #expect(canonical == """
            GET
            /test.txt

            host:examplebucket.s3.amazonaws.com
            range:bytes=0-9
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            x-amz-date:20130524T000000Z

            host;range;x-amz-content-sha256;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(Self.s3Signer.stringToSign(canonicalRequest: canonical, date: Self.s3Date) == """
            AWS4-HMAC-SHA256
            20130524T000000Z
            20130524/us-east-1/s3/aws4_request
            7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
            """)
    }

    @Test func unsignedPayloadIsSignedAsTheLiteralMarker() {
        let request = SigV4Request(
            method: "PUT", path: "/key", headers: [("host", "h")], payloadHash: SigV4Signer.unsignedPayload)
        let signed = Self.s3Signer.sign(request, date: Self.s3Date, addContentSHA256Header: true)
        #expect(signed.header("x-amz-content-sha256") == "UNSIGNED-PAYLOAD")
        #expect(Self.s3Signer.canonicalRequest(for: signed).text.hasSuffix("\nUNSIGNED-PAYLOAD"))
    }

    @Test func keysAreEncodedOncePerSegment() {
        #expect(SigV4Signer.canonicalURI("/bucket/dir/a b+c=d&e%f/ünï/日本") == "/bucket/dir/a%20b%2Bc%3Dd%26e%25f/%C3%BCn%C3%AF/%E6%97%A5%E6%9C%AC")
        #expect(SigV4Signer.canonicalURI("/bucket/a//b/./c/../d/") == "/bucket/a//b/./c/../d/")
        #expect(SigV4Signer.canonicalURI("") == "/")
        #expect(SigV4Signer.canonicalQuery([("prefix", "a/b c"), ("continuation-token", "x+y=")])
            == "continuation-token=x%2By%3D&prefix=a%2Fb%20c")
    }

    @Test func credentialsNeverShowSecrets() {
        let credentials = AWSCredentials(accessKeyID: "AKIAVISIBLEPART", secretAccessKey: "SECRET-KEY-VALUE", sessionToken: "TOKEN-VALUE")
        for text in [credentials.description, String(reflecting: credentials), "\(credentials)", dumped(credentials)] {
            #expect(!text.contains("SECRET-KEY-VALUE"))
            #expect(!text.contains("TOKEN-VALUE"))
            #expect(!text.contains("AKIAVISIBLEPART"))
            #expect(text.contains("AKIA…"))
        }
    }
}

func dumped(_ value: some Any) -> String {
    var text = ""
    dump(value, to: &text)
    return text
}

@Suite("Digests")
struct DigestTests {
    @Test func knownAnswers() {
        #expect(Hashes.hex(Hashes.sha256("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Hashes.hex(Hashes.sha256([UInt8]())) == SigV4Signer.emptyPayloadHash)
        #expect(Hashes.hex([UInt8]("abc".utf8).withUnsafeBytes { Hashes.md5($0) }) == "900150983cd24fb0d6963f7d28e17f72")
        // RFC 4231 test case 2.
        #expect(Hashes.hex(Hashes.hmacSHA256(key: Array("Jefe".utf8), "what do ya want for nothing?"))
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(Hashes.hex(Hashes.hmacSHA256(key: Array("key".utf8), ""))
            == "5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0")
    }
}

"""
Tests for :mod:`twisted_journey.fetch.auth`: challenge parsing (hostile input
included), RFC 7616's Digest answers, and the ``-u`` modes.
"""

from __future__ import annotations

from twisted.trial import unittest

from twisted_journey.fetch import auth
from twisted_journey.fetch.auth import Authenticator, Challenge, ChallengeError, parse_challenges

#: RFC 7616 section 3.9.1's challenge (the algorithm added per test).
_RFC = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
_MUFASA = ("Mufasa", "Circle of Life")


def _fields(header: str) -> dict[str, str]:
    """
    An ``Authorization: Digest ...`` value's parameters (read back with the parser).
    """
    (challenge,) = parse_challenges([header])
    return challenge.parameters


class ParseChallengesTests(unittest.SynchronousTestCase):
    """
    ``WWW-Authenticate`` is read strictly (RFC 9110 section 11.6.1).
    """

    def test_severalChallenges(self) -> None:
        """
        Several challenges in one field and across fields, quoted-string escapes undone,
        a token68 told apart from a parameter.
        """
        challenges = parse_challenges(
            [
                r'Digest realm="a\"b\\c", nonce="n", algorithm=SHA-256, Digest realm=x, '
                r'nonce=y, Basic realm="r"',
                "Negotiate abc==, Bearer",
            ]
        )
        self.assertEqual(
            challenges,
            [
                Challenge("Digest", {"realm": 'a"b\\c', "nonce": "n", "algorithm": "SHA-256"}),
                Challenge("Digest", {"realm": "x", "nonce": "y"}),
                Challenge("Basic", {"realm": "r"}),
                Challenge("Negotiate", {}, "abc=="),
                Challenge("Bearer", {}),
            ],
        )

    def test_malformed(self) -> None:
        """
        An unterminated or control-laden quoted-string, a repeated parameter, a missing
        scheme or comma: each a :class:`ChallengeError`.
        """
        for value in [
            'Digest realm="x',
            'Digest realm="x\\',
            'Digest realm="a\r\nX-Injected: 1"',
            "Digest realm=x, realm=y",
            "=x",
            "Digest realm=x nonce=y",
            "Digest realm=@",
        ]:
            with self.assertRaises(ChallengeError, msg=value):
                parse_challenges([value])

    def test_bounded(self) -> None:
        """
        Too many bytes, challenges or parameters: a :class:`ChallengeError`, quickly.
        """
        with self.assertRaises(ChallengeError):
            parse_challenges(["Basic realm=" + "x" * auth.MAX_CHALLENGE_BYTES])
        with self.assertRaises(ChallengeError):
            parse_challenges([", ".join(["Basic"] * (auth.MAX_CHALLENGES + 1))])
        params = ", ".join(f"p{i}=v" for i in range(auth.MAX_PARAMETERS + 1))
        with self.assertRaises(ChallengeError):
            parse_challenges(["Digest " + params])


class DigestTests(unittest.SynchronousTestCase):
    """
    Digest answers are RFC 7616's.
    """

    def test_rfc7616MD5(self) -> None:
        """
        Section 3.9.1's MD5 example gives its ``response``.
        """
        (challenge,) = parse_challenges([_RFC + ", algorithm=MD5"])
        header = auth.digest_authorization(challenge, _MUFASA, "GET", "/dir/index.html", 1, _CNONCE)
        fields = _fields(header)
        self.assertEqual(fields["response"], "8ca523f5e9506fed4657c9700eebdbec")
        self.assertEqual(fields["nc"], "00000001")
        self.assertEqual(fields["qop"], "auth")
        self.assertEqual(fields["opaque"], "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")

    def test_rfc7616SHA256(self) -> None:
        """
        Section 3.9.1's SHA-256 example gives its ``response``.
        """
        (challenge,) = parse_challenges([_RFC + ", algorithm=SHA-256"])
        header = auth.digest_authorization(challenge, _MUFASA, "GET", "/dir/index.html", 1, _CNONCE)
        self.assertEqual(
            _fields(header)["response"],
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        )

    def test_quotedValuesEscaped(self) -> None:
        """
        A user name with a quote and a backslash is escaped, so the header reads back
        as the same name.
        """
        (challenge,) = parse_challenges(['Digest realm="r", nonce="n", qop=auth'])
        header = auth.digest_authorization(challenge, ('a"b\\c', "p"), "GET", "/", 1, "c")
        self.assertEqual(_fields(header)["username"], 'a"b\\c')

    def test_userWithControlCharacters(self) -> None:
        """
        A user name that is not printable ASCII goes as ``username*`` (RFC 7616 section
        3.4.4), percent-encoded: no raw CR or LF reaches the header.
        """
        (challenge,) = parse_challenges(['Digest realm="r", nonce="n", qop=auth'])
        header = auth.digest_authorization(challenge, ("a\r\nX: é", "p"), "GET", "/", 1, "c")
        self.assertIn("username*=UTF-8''a%0D%0AX%3A%20%C3%A9", header)
        self.assertNotIn("\r", header)


class AuthenticatorTests(unittest.SynchronousTestCase):
    """
    The ``-u`` modes.
    """

    def test_basicMode(self) -> None:
        """
        ``basic``: Basic at once, no answer to a challenge.
        """
        authenticator = Authenticator(("u", "p"))
        self.assertEqual(authenticator.preemptive(), "Basic dTpw")
        self.assertIsNone(authenticator.answer("GET", "/", ['Digest realm="r", nonce="n"']))

    def test_digestMode(self) -> None:
        """
        ``digest``: nothing at once; the strongest Digest challenge answered, its nonce
        counted; Basic never.
        """
        authenticator = Authenticator(("u", "p"), "digest")
        self.assertIsNone(authenticator.preemptive())
        values = ['Digest realm="r", nonce="n", algorithm=MD5, qop=auth', "Digest realm=r, "
                  "nonce=n2, algorithm=SHA-256, qop=auth"]  # fmt: skip
        first = _fields(authenticator.answer("GET", "/", values) or "")
        self.assertEqual((first["algorithm"], first["nc"]), ("SHA-256", "00000001"))
        second = _fields(authenticator.answer("GET", "/", values) or "")
        self.assertEqual(second["nc"], "00000002")
        self.assertIsNone(authenticator.answer("GET", "/", ['Basic realm="r"']))

    def test_anyMode(self) -> None:
        """
        ``any``: Digest when offered, else Basic.
        """
        authenticator = Authenticator(("u", "p"), "any")
        self.assertEqual(authenticator.answer("GET", "/", ['Basic realm="r"']), "Basic dTpw")

    def test_unusable(self) -> None:
        """
        A malformed field, an unknown algorithm, ``qop=auth-int`` only, a challenge
        without a nonce: no answer.
        """
        authenticator = Authenticator(("u", "p"), "any")
        for value in [
            'Digest realm="r", nonce="n',
            'Digest realm="r", nonce="n", algorithm=SHA-512-256',
            'Digest realm="r", nonce="n", qop=auth-int',
            'Digest realm="r"',
        ]:
            self.assertIsNone(authenticator.answer("GET", "/", [value]), value)

    def test_nonASCIIAlgorithm(self) -> None:
        """
        An algorithm name that only case-folds into a known one (``\xdf`` uppercases
        to ``SS``) is unknown: it is not answered, nor echoed into the header.
        """
        authenticator = Authenticator(("u", "p"), "digest")
        value = 'Digest realm="r", nonce="n", algorithm="MD5-SE\xdf", qop="auth"'
        self.assertIsNone(authenticator.answer("GET", "/", [value]))


class UnauthorizedDetailTests(unittest.SynchronousTestCase):
    """
    A ``401``'s sentence names what the server asked for.
    """

    def test_digestWithoutDigest(self) -> None:
        self.assertEqual(
            auth.unauthorized_detail(['Digest realm="r", nonce="n"'], "basic"),
            "it asks for Digest authentication: use --digest or --anyauth with --user",
        )

    def test_optionsOfEveryTool(self) -> None:
        """
        Every option a ``401``'s clause names is, in each tool that prints it
        (``journey fetch``, the twin, ``journey mirror``, ``twistd journey-fetch``), the
        credentials option or a mode flag, never another option with the same name
        (``twistd journey-fetch``'s ``-u`` is ``--urls``).
        """
        import argparse
        import re

        from twisted_journey.cli import _parser
        from twisted_journey.fallback import fetch as twin
        from twisted_journey.fetch.cli import configure
        from twisted_journey.tap.fetch import Options

        challenges = [[], ['Digest realm="r", nonce="n"'], ['Basic realm="r"'], ["Negotiate"]]
        named = {
            option
            for values in challenges
            for mode in ["basic", "digest", "any"]
            for option in re.findall(
                r"(?<![\w-])--?[a-z][a-z-]*", auth.unauthorized_detail(values, mode)
            )
        }
        self.assertTrue(named)
        journey = argparse.ArgumentParser()
        configure(journey)
        mirror = _parser()._subparsers._group_actions[0].choices["mirror"]  # type: ignore[union-attr]
        wanted = {"credentials", "authMode"}
        for parser in [journey, twin.parser(), mirror]:
            for option in named:
                self.assertIn(parser._option_string_actions[option].dest, wanted, option)
        tap = Options()
        for option in named:
            name = option.lstrip("-")
            name = tap.synonyms.get(name, name)
            self.assertIn(name, {"user", "digest", "anyauth", "basic"}, option)

    def test_unknownAndMalformed(self) -> None:
        self.assertIn("which journey does not do", auth.unauthorized_detail(["Negotiate"], "any"))
        self.assertIn("malformed", auth.unauthorized_detail(['Digest realm="'], "any"))
        self.assertEqual(auth.unauthorized_detail([], "basic"), "")

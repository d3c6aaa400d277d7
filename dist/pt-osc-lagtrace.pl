# pt-online-schema-change plugin: replica lag from lagtrace instead of
# Seconds_Behind_Master, so that --max-lag acts on lagtrace's numbers (sub-second,
# skew-free, the upper bound of each replica's lag: conservative).
#
#   LAGTRACE_URL=http://127.0.0.1:9104 pt-online-schema-change \
#     --plugin /usr/share/lagtrace/pt-osc-lagtrace.pl --max-lag 1 --check-interval 0.5 \
#     --alter "ADD COLUMN c INT" --execute D=app,t=orders
#
# LAGTRACE_URL is the [http] listener of the `lagtrace record` that watches the
# cluster (default http://127.0.0.1:9104). Each replica pt-online-schema-change checks
# is matched by host and port with a replica of lagtrace's config (its `host:port` as
# the config writes it: give pt-osc the same, e.g. with --recursion-method dsn=...).
# A replica lagtrace cannot vouch for (unreachable, no lag measured yet, lag known only
# as a floor) reads as stopped: pt-osc waits. A replica
# lagtrace does not know is said once on STDERR and read as stopped too.
#
# Needs only what percona-toolkit already needs: Perl's core HTTP::Tiny and JSON::PP.

package pt_online_schema_change_plugin;

use strict;
use warnings;

use HTTP::Tiny;
use JSON::PP;
use Time::HiRes qw(time);

# How long one /status document answers for every replica (pt-osc asks per replica,
# one after the other in each round).
my $FRESH_S = 0.05;

sub new {
    my ($class, %args) = @_;
    my $url = $ENV{LAGTRACE_URL} || 'http://127.0.0.1:9104';
    $url =~ s{/+$}{};
    my $self = {
        url    => $url,
        http   => HTTP::Tiny->new(timeout => 2),
        status => undef,
        at     => 0,
        said   => {},
    };
    return bless $self, $class;
}

# lagtrace's /status, fetched again when older than $FRESH_S; undef when it cannot be.
sub status {
    my ($self) = @_;
    return $self->{status} if $self->{status} && time - $self->{at} < $FRESH_S;
    my $res = $self->{http}->get("$self->{url}/status");
    if (!$res->{success}) {
        $self->say_once('status', "lagtrace at $self->{url} does not answer ($res->{status} $res->{reason}): "
            . "replicas read as stopped until it does");
        $self->{status} = undef;
        return undef;
    }
    my $doc = eval { decode_json($res->{content}) };
    $self->{status} = $doc;
    $self->{at} = time;
    return $doc;
}

sub say_once {
    my ($self, $key, $text) = @_;
    return if $self->{said}->{$key}++;
    print STDERR "lagtrace plugin: $text\n";
}

# The replica of lagtrace's status at host:port, if any.
sub replica_at {
    my ($self, $doc, $host, $port) = @_;
    my $want = "$host:$port";
    for my $c (@{ $doc->{clusters} || [] }) {
        for my $r (@{ $c->{replicas} || [] }) {
            return $r if defined $r->{address} && $r->{address} eq $want;
        }
    }
    return undef;
}

sub get_slave_lag {
    my ($self, %args) = @_;
    return sub {
        my ($cxn) = @_;
        my $dsn = $cxn->dsn();
        my ($host, $port) = ($dsn->{h} || 'localhost', $dsn->{P} || 3306);
        my $doc = $self->status() or return undef;
        my $r = $self->replica_at($doc, $host, $port);
        if (!$r) {
            $self->say_once("unknown $host:$port", "lagtrace knows no replica at $host:$port "
                . "(match pt-osc's DSNs to lagtrace's config): read as stopped");
            return undef;
        }
        # No lag to go by: it does not answer, or none was measured yet. A stopped SQL
        # or IO thread needs no rule of its own: the upper bound grows a second a second
        # from the last beat it applied, and falls back as soon as it applies again
        # (its thread state would wait for the next status poll, up to a second more).
        my $why = $r->{reason} || '';
        return undef if $why =~ /^(unreachable|stale|starting)$/;
        return undef unless defined $r->{lag_hi_ms};
        return $r->{lag_hi_ms} / 1000;
    };
}

1;

//! `spate cluster info`: the cluster id, the controller, the brokers, and with `--verbose` the API
//! versions the bootstrap broker speaks and the ones the CLI would use.

use clap::Subcommand;
use kafka_protocol::messages::{ApiKey, DescribeClusterRequest, DescribeClusterResponse};
use serde_json::{json, Value};

use super::client::{kafka_error, Admin, CliResult};
use super::output::{print_json, Table};
use super::Common;
use bench::client::Connection;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, controller and brokers
    Info {
        /// Also list the API versions of the bootstrap broker
        #[arg(long)]
        verbose: bool,
    },
}

struct BrokerRow {
    node_id: i32,
    host: String,
    port: i32,
    rack: Option<String>,
}

pub fn run(common: &Common, command: ClusterCommand) -> CliResult<()> {
    let ClusterCommand::Info { verbose } = command;
    let mut admin = Admin::connect(common)?;
    let bootstrap = admin.bootstrap.clone();
    let versions = admin.api_versions()?;
    // DescribeCluster (Kafka 2.8+) names the real controller; Metadata is the fallback.
    let (cluster_id, controller_id, mut brokers) = if versions.contains_key(&(ApiKey::DescribeCluster as i16)) {
        let (_, response): (i16, DescribeClusterResponse) =
            admin.call(&bootstrap, ApiKey::DescribeCluster, |_| DescribeClusterRequest::default())?;
        if response.error_code != 0 {
            return Err(kafka_error(
                &bootstrap,
                "DescribeCluster",
                response.error_code,
                response.error_message.as_ref(),
            ));
        }
        let brokers = response
            .brokers
            .iter()
            .map(|broker| BrokerRow {
                node_id: broker.broker_id.0,
                host: broker.host.to_string(),
                port: broker.port,
                rack: broker.rack.as_ref().map(ToString::to_string),
            })
            .collect::<Vec<_>>();
        (response.cluster_id.to_string(), response.controller_id.0, brokers)
    } else {
        let response = admin.metadata(Some(&[]))?;
        let brokers = response
            .brokers
            .iter()
            .map(|broker| BrokerRow {
                node_id: broker.node_id.0,
                host: broker.host.to_string(),
                port: broker.port,
                rack: broker.rack.as_ref().map(ToString::to_string),
            })
            .collect::<Vec<_>>();
        (response.cluster_id.map(|id| id.to_string()).unwrap_or_default(), response.controller_id.0, brokers)
    };
    brokers.sort_by_key(|broker| broker.node_id);
    let mut apis: Vec<(i16, i16, i16)> = versions.iter().map(|(&key, &(min, max))| (key, min, max)).collect();
    apis.sort_unstable();
    let api_rows: Vec<(String, i16, i16, i16, Option<i16>)> = apis
        .iter()
        .map(|&(key, min, max)| {
            let name = ApiKey::try_from(key).map_or_else(|_| format!("Unknown({key})"), |api| format!("{api:?}"));
            let ours = ApiKey::try_from(key).map(Connection::client_max_version).unwrap_or(0);
            // 0: an API the CLI does not use.
            let used = (ours > 0).then_some(ours.min(max)).filter(|&version| version >= min);
            (name, key, min, max, used)
        })
        .collect();
    if common.json {
        let brokers: Vec<Value> = brokers
            .iter()
            .map(|broker| json!({"node_id": broker.node_id, "host": broker.host, "port": broker.port, "rack": broker.rack}))
            .collect();
        let mut document = json!({
            "bootstrap": bootstrap,
            "cluster_id": cluster_id,
            "controller_id": controller_id,
            "brokers": brokers,
        });
        if verbose {
            document["api_versions"] = api_rows
                .iter()
                .map(|(name, key, min, max, used)| {
                    json!({"api": name, "key": key, "min_version": min, "max_version": max, "cli_version": used})
                })
                .collect();
        }
        print_json(&document);
        return Ok(());
    }
    println!("Cluster id: {cluster_id}");
    println!("Controller: {controller_id}");
    println!();
    let mut table = Table::new(&["BROKER", "HOST", "PORT", "RACK"]);
    for broker in &brokers {
        table.row(vec![
            broker.node_id.to_string(),
            broker.host.clone(),
            broker.port.to_string(),
            broker.rack.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    table.print();
    if verbose {
        println!();
        println!("API versions of {bootstrap}:");
        let mut table = Table::new(&["API", "KEY", "MIN", "MAX", "CLI-USES"]);
        for (name, key, min, max, used) in &api_rows {
            table.row(vec![
                name.clone(),
                key.to_string(),
                min.to_string(),
                max.to_string(),
                used.map_or_else(|| "-".to_owned(), |version| version.to_string()),
            ]);
        }
        table.print();
    }
    Ok(())
}
